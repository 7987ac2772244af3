# Writes OUT: a header with one raw-string constant per Lua file in FILES,
# named after the file's stem, inside namespace redline::scripts.
set(content "// Generated from src/**/*.lua by cmake/embed_lua.cmake. Do not edit.\n#pragma once\n#include <string_view>\nnamespace redline::scripts {\n")
foreach(f ${FILES})
  get_filename_component(stem ${f} NAME_WE)
  string(REPLACE "-" "_" stem ${stem})
  file(READ ${f} body)
  string(APPEND content "inline constexpr std::string_view ${stem} = R\"redline_lua(${body})redline_lua\";\n")
endforeach()
string(APPEND content "}  // namespace redline::scripts\n")
file(WRITE ${OUT}.tmp "${content}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
