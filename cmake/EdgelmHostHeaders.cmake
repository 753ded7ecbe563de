# cmake/EdgelmHostHeaders.cmake - find the header-only third-party libraries edgelm uses
# (Highway, doctest, nlohmann/json, xsimd) without ever putting /usr/include on em++'s path.
#
# Defines the INTERFACE target edgelm_third_party_headers (alias edgelm::third_party_headers):
#   * native builds: the folders holding hwy/, doctest/, nlohmann/, xsimd/ (usually /usr/include,
#     which the compiler already searches, so nothing is added);
#   * Emscripten: a private folder of symlinks <build>/_host_include/{hwy,doctest,nlohmann,xsimd,xtl}
#     pointing at the host's headers. em++ must not see /usr/include itself: glibc's headers there
#     shadow emscripten's libc and break the build (see shared/TOOLCHAIN.md).
include_guard(GLOBAL)

set(EDGELM_HOST_INCLUDE_DIR "/usr/include" CACHE PATH
    "Host folder holding hwy/, doctest/, nlohmann/, xsimd/ (used to build the Emscripten symlink folder)")

add_library(edgelm_third_party_headers INTERFACE)
add_library(edgelm::third_party_headers ALIAS edgelm_third_party_headers)

set(_edgelm_header_probes hwy/highway.h doctest/doctest.h nlohmann/json.hpp xsimd/xsimd.hpp)

if(EMSCRIPTEN)
  set(_dir "${CMAKE_BINARY_DIR}/_host_include")
  file(MAKE_DIRECTORY "${_dir}")
  foreach(_sub hwy doctest nlohmann xsimd xtl)
    if(EXISTS "${EDGELM_HOST_INCLUDE_DIR}/${_sub}" AND NOT EXISTS "${_dir}/${_sub}")
      file(CREATE_LINK "${EDGELM_HOST_INCLUDE_DIR}/${_sub}" "${_dir}/${_sub}" SYMBOLIC)
    endif()
  endforeach()
  target_include_directories(edgelm_third_party_headers SYSTEM INTERFACE "$<BUILD_INTERFACE:${_dir}>")
  set(EDGELM_HWY_FOUND FALSE)
  if(EXISTS "${_dir}/hwy/highway.h")
    set(EDGELM_HWY_FOUND TRUE)
  endif()
  set(EDGELM_DOCTEST_FOUND FALSE)
  if(EXISTS "${_dir}/doctest/doctest.h")
    set(EDGELM_DOCTEST_FOUND TRUE)
  endif()
else()
  foreach(_probe IN LISTS _edgelm_header_probes)
    string(REGEX REPLACE "/.*" "" _name "${_probe}")
    string(TOUPPER "${_name}" _up)
    find_path(EDGELM_${_up}_INCLUDE_DIR "${_probe}")
    if(EDGELM_${_up}_INCLUDE_DIR)
      set(EDGELM_${_up}_FOUND TRUE)
      # Implicit folders (/usr/include) are searched anyway; adding them as -isystem reorders
      # the search path and breaks libstdc++'s #include_next.
      if(NOT EDGELM_${_up}_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
        target_include_directories(edgelm_third_party_headers SYSTEM INTERFACE
                                   "$<BUILD_INTERFACE:${EDGELM_${_up}_INCLUDE_DIR}>")
      endif()
    else()
      set(EDGELM_${_up}_FOUND FALSE)
    endif()
  endforeach()
endif()
