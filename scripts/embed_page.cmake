# cmake -DIN=page.html -DOUT=serve_page.c -P embed_page.cmake: the page as a C byte array
# (serve_page_html, NUL-terminated) for src/serve (no CDN, no files at run time).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n2)
math(EXPR n "${n2} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "// Generated from src/serve/page.html by scripts/embed_page.cmake: do not edit.\n#include <stddef.h>\nconst char serve_page_html[] = {\n${bytes}0x00};\nconst size_t serve_page_html_len = ${n};\n")
