# FindLibev.cmake -- locate libev (Debian ships no pkg-config file for it).
#
# Result variables:
#   Libev_FOUND         - TRUE if libev was found
#   Libev_INCLUDE_DIRS  - directory containing ev.h
#   Libev_LIBRARIES     - the libev library
#   Libev_VERSION       - "MAJOR.MINOR" from ev.h (if it could be parsed)
#
# Imported target:
#   Libev::Libev
#
# Hints: set Libev_ROOT (or LIBEV_ROOT) to a prefix that contains
# include/ev.h and lib/libev.{so,a}.

if(NOT Libev_ROOT AND DEFINED ENV{LIBEV_ROOT})
  set(Libev_ROOT "$ENV{LIBEV_ROOT}")
endif()

find_path(Libev_INCLUDE_DIR
  NAMES ev.h
  HINTS ${Libev_ROOT} ${LIBEV_ROOT}
  PATH_SUFFIXES include include/libev libev)

find_library(Libev_LIBRARY
  NAMES ev libev
  HINTS ${Libev_ROOT} ${LIBEV_ROOT}
  PATH_SUFFIXES lib lib64)

if(Libev_INCLUDE_DIR AND EXISTS "${Libev_INCLUDE_DIR}/ev.h")
  file(STRINGS "${Libev_INCLUDE_DIR}/ev.h" _libev_ver_lines
       REGEX "^#define[ \t]+EV_VERSION_(MAJOR|MINOR)[ \t]+[0-9]+")
  string(REGEX REPLACE ".*EV_VERSION_MAJOR[ \t]+([0-9]+).*" "\\1" _libev_major "${_libev_ver_lines}")
  string(REGEX REPLACE ".*EV_VERSION_MINOR[ \t]+([0-9]+).*" "\\1" _libev_minor "${_libev_ver_lines}")
  if(_libev_major MATCHES "^[0-9]+$" AND _libev_minor MATCHES "^[0-9]+$")
    set(Libev_VERSION "${_libev_major}.${_libev_minor}")
  endif()
  unset(_libev_ver_lines)
  unset(_libev_major)
  unset(_libev_minor)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Libev
  REQUIRED_VARS Libev_LIBRARY Libev_INCLUDE_DIR
  VERSION_VAR Libev_VERSION)

if(Libev_FOUND)
  set(Libev_INCLUDE_DIRS "${Libev_INCLUDE_DIR}")
  set(Libev_LIBRARIES "${Libev_LIBRARY}")
  if(NOT TARGET Libev::Libev)
    add_library(Libev::Libev UNKNOWN IMPORTED)
    set_target_properties(Libev::Libev PROPERTIES
      IMPORTED_LOCATION "${Libev_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${Libev_INCLUDE_DIR}")
  endif()
endif()

mark_as_advanced(Libev_INCLUDE_DIR Libev_LIBRARY)
