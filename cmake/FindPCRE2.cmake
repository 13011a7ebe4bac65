# FindPCRE2.cmake -- locate the 8-bit PCRE2 library (libpcre2-8).
#
# Uses pkg-config (module "libpcre2-8") when available and falls back to a
# plain find_path/find_library search otherwise.
#
# Result variables:
#   PCRE2_FOUND, PCRE2_INCLUDE_DIRS, PCRE2_LIBRARIES, PCRE2_VERSION
#
# Imported target:
#   PCRE2::8   (libpcre2-8; consumers still #define PCRE2_CODE_UNIT_WIDTH 8
#               before including <pcre2.h>)

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_PCRE2_8 QUIET libpcre2-8)
endif()

find_path(PCRE2_INCLUDE_DIR
  NAMES pcre2.h
  HINTS ${PC_PCRE2_8_INCLUDEDIR} ${PC_PCRE2_8_INCLUDE_DIRS})

find_library(PCRE2_8_LIBRARY
  NAMES pcre2-8
  HINTS ${PC_PCRE2_8_LIBDIR} ${PC_PCRE2_8_LIBRARY_DIRS})

if(PC_PCRE2_8_VERSION)
  set(PCRE2_VERSION "${PC_PCRE2_8_VERSION}")
elseif(PCRE2_INCLUDE_DIR AND EXISTS "${PCRE2_INCLUDE_DIR}/pcre2.h")
  file(STRINGS "${PCRE2_INCLUDE_DIR}/pcre2.h" _pcre2_ver_lines
       REGEX "^#define[ \t]+PCRE2_(MAJOR|MINOR)[ \t]+[0-9]+")
  string(REGEX REPLACE ".*PCRE2_MAJOR[ \t]+([0-9]+).*" "\\1" _pcre2_major "${_pcre2_ver_lines}")
  string(REGEX REPLACE ".*PCRE2_MINOR[ \t]+([0-9]+).*" "\\1" _pcre2_minor "${_pcre2_ver_lines}")
  if(_pcre2_major MATCHES "^[0-9]+$" AND _pcre2_minor MATCHES "^[0-9]+$")
    set(PCRE2_VERSION "${_pcre2_major}.${_pcre2_minor}")
  endif()
  unset(_pcre2_ver_lines)
  unset(_pcre2_major)
  unset(_pcre2_minor)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PCRE2
  REQUIRED_VARS PCRE2_8_LIBRARY PCRE2_INCLUDE_DIR
  VERSION_VAR PCRE2_VERSION)

if(PCRE2_FOUND)
  set(PCRE2_INCLUDE_DIRS "${PCRE2_INCLUDE_DIR}")
  set(PCRE2_LIBRARIES "${PCRE2_8_LIBRARY}")
  if(NOT TARGET PCRE2::8)
    add_library(PCRE2::8 UNKNOWN IMPORTED)
    set_target_properties(PCRE2::8 PROPERTIES
      IMPORTED_LOCATION "${PCRE2_8_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${PCRE2_INCLUDE_DIR}")
  endif()
endif()

mark_as_advanced(PCRE2_INCLUDE_DIR PCRE2_8_LIBRARY)
