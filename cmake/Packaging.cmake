# cmake/Packaging.cmake -- Debian packages with CPack (`make package`).
#
# One package per install component (see the Install section of
# CMakeLists.txt):
#   libtstream0_<v>_<arch>.deb       runtime: libtstream.so.0
#   libtstream-dev_<v>_<arch>.deb    development: headers, .so link, .a, .pc,
#                                    CMake package, man3 pages
#   libtstream-tools_<v>_<arch>.deb  tools: tstream-* example programs, man1
#                                    (only when TS_INSTALL_EXAMPLES=ON)
# Configure with -DCMAKE_INSTALL_PREFIX=/usr so that GNUInstallDirs picks the
# multiarch library directory, then `cpack -G DEB` in the build directory.
# Library dependencies of libtstream0 and libtstream-tools come from
# dpkg-shlibdeps; libtstream0 ships a shlibs file and an ldconfig trigger.

set(CPACK_PACKAGE_NAME "libtstream")
set(CPACK_PACKAGE_VENDOR "libtstream")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "libtstream maintainers <maintainers@libtstream.invalid>")
set(CPACK_RESOURCE_FILE_LICENSE "${CMAKE_CURRENT_SOURCE_DIR}/LICENSE")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
# Run the install step with the real prefix under DESTDIR, so that files
# computed from CMAKE_INSTALL_PREFIX at install time (libtstream.pc) name
# /usr, not the staging directory.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR "DEB")
set(CPACK_SOURCE_GENERATOR "")

set(CPACK_COMPONENTS_ALL runtime development)
if(TS_INSTALL_EXAMPLES)
  list(APPEND CPACK_COMPONENTS_ALL tools)
endif()
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)       # <name>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION "libs")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")

set(_ts_deb_version "${PROJECT_VERSION}")
set(_ts_soname_major "${TS_SOVERSION}")     # libtstream.so.N -> package libtstreamN

# runtime
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME "libtstream${_ts_soname_major}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION "libs")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")   # 0.x: each version its own ABI
# Each description is one string; its first line is the package summary.
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "Tornado-style IOLoop and IOStream for C - shared library
libtstream gives C programs Tornado's ioloop and iostream model on libev:
buffered non-blocking streams over TCP, TLS and pipes, TCPServer,
TCPClient, a resolver and fork_processes.")

# development
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_NAME "libtstream-dev")
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_SECTION "libdevel")
set(CPACK_DEBIAN_DEVELOPMENT_PACKAGE_DEPENDS
    "libtstream${_ts_soname_major} (= ${_ts_deb_version}), libev-dev, libssl-dev, libpcre2-dev")
set(CPACK_DEBIAN_DEVELOPMENT_DESCRIPTION "Tornado-style IOLoop and IOStream for C - development files
Headers, the static library, pkg-config file (libtstream), CMake package
(find_package(tstream)) and man pages for libtstream.")

# tools
set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME "libtstream-tools")
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_TOOLS_DESCRIPTION "Tornado-style IOLoop and IOStream for C - example programs
tstream-http-client, tstream-http-server, tstream-echo-server and the
other libtstream examples, with their man pages.")

include(CPack)
