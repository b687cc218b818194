# ECGQ_TRIM_LIBTORCH: every program linking LibTorch loads a copy of libtorch_cpu without the
# DT_NEEDED entries that supply none of its symbols (scripts/trim-libtorch). Debian links
# libtorch_cpu against OpenCV (with Qt5, GDAL, ...), FFmpeg, LMDB and LevelDB for caffe2
# operators its build does not contain: about 230 of the 290 libraries a worker loads, 0.1 s of
# CPU and tens of MiB of mapped code per process for nothing (docs/performance.md, "A trimmed
# LibTorch"). Needs patchelf; without it the programs load the system library, as before.
#
# The copy keeps the SONAME and goes to ${CMAKE_BINARY_DIR}/lib/ecgq; it is linked as an imported
# library, so CMake puts that directory in the RUNPATH of every program linking LibTorch (tests,
# benchmarks). ecgq-worker is linked with its install RUNPATH, $ORIGIN/../lib/ecgq, in the build
# tree too (bin/ and lib/ecgq/ there as in an install), so that `cmake --install` (the container
# image) copies it unchanged beside P/lib/ecgq/. The loader finds a program's direct dependencies
# through its RUNPATH before the system directories, and libtorch.so's own dependency on the
# SONAME then resolves to the copy already loaded. Not lib/ itself: an install to /usr/local
# would put the copy in ldconfig's path, where every program on the host would load it.
find_program(PATCHELF_EXECUTABLE patchelf)
if(PATCHELF_EXECUTABLE)
  set(_ecgq_trim_default ON)
else()
  set(_ecgq_trim_default OFF)
endif()
option(ECGQ_TRIM_LIBTORCH
       "Programs load a copy of libtorch_cpu without the libraries it links but never uses (needs patchelf)"
       ${_ecgq_trim_default})
set(ECGQ_TRIMMED_LIBTORCH "")
set(ECGQ_SYSTEM_LIBTORCH_DIR "")
if(NOT ECGQ_TRIM_LIBTORCH)
  return()
endif()
if(NOT PATCHELF_EXECUTABLE)
  message(FATAL_ERROR "ECGQ_TRIM_LIBTORCH=ON needs patchelf (apt-get install patchelf), "
                      "or configure with -DECGQ_TRIM_LIBTORCH=OFF")
endif()

# The library the torch_cpu target imports, whichever configuration Debian's export provides.
get_target_property(_ecgq_configs torch_cpu IMPORTED_CONFIGURATIONS)
set(_ecgq_torch_cpu "")
foreach(_c IN LISTS _ecgq_configs)
  get_target_property(_ecgq_torch_cpu torch_cpu IMPORTED_LOCATION_${_c})
  if(_ecgq_torch_cpu)
    break()
  endif()
endforeach()
if(NOT _ecgq_torch_cpu)
  get_target_property(_ecgq_torch_cpu torch_cpu IMPORTED_LOCATION)
endif()
if(NOT _ecgq_torch_cpu OR NOT EXISTS "${_ecgq_torch_cpu}")
  message(FATAL_ERROR "ECGQ_TRIM_LIBTORCH: no library file for the torch_cpu target")
endif()
execute_process(COMMAND readelf -d "${_ecgq_torch_cpu}" OUTPUT_VARIABLE _ecgq_dyn
                RESULT_VARIABLE _ecgq_rc)
string(REGEX MATCH "\\(SONAME\\)[^[]*\\[([^]]+)\\]" _ecgq_match "${_ecgq_dyn}")
if(NOT _ecgq_rc EQUAL 0 OR NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "ECGQ_TRIM_LIBTORCH: no SONAME in ${_ecgq_torch_cpu}")
endif()
set(ECGQ_TRIMMED_LIBTORCH "${CMAKE_BINARY_DIR}/lib/ecgq/${CMAKE_MATCH_1}")
get_filename_component(ECGQ_SYSTEM_LIBTORCH_DIR "${_ecgq_torch_cpu}" DIRECTORY)

add_custom_command(
  OUTPUT "${ECGQ_TRIMMED_LIBTORCH}"
  COMMAND "${CMAKE_COMMAND}" -E env "PATCHELF=${PATCHELF_EXECUTABLE}"
          "${CMAKE_SOURCE_DIR}/scripts/trim-libtorch" "${_ecgq_torch_cpu}"
          "${CMAKE_BINARY_DIR}/lib/ecgq"
  DEPENDS "${_ecgq_torch_cpu}" "${CMAKE_SOURCE_DIR}/scripts/trim-libtorch"
  COMMENT "Trimming ${CMAKE_MATCH_1} (scripts/trim-libtorch)"
  VERBATIM)
add_custom_target(ecgq_trimmed_libtorch DEPENDS "${ECGQ_TRIMMED_LIBTORCH}")

# The copy as a library to link: its directory lands in the build RUNPATH of every program that
# links LibTorch (through ecgq_torch). torch_cpu itself points at it too, so that the link line
# (Debian's targets name the file in a raw -Wl flag) holds one libtorch_cpu, not two.
add_library(ecgq_trimmed_torch_cpu SHARED IMPORTED)
set_target_properties(ecgq_trimmed_torch_cpu PROPERTIES
  IMPORTED_LOCATION "${ECGQ_TRIMMED_LIBTORCH}"
  IMPORTED_SONAME "${CMAKE_MATCH_1}")
foreach(_c IN LISTS _ecgq_configs)
  set_target_properties(torch_cpu PROPERTIES IMPORTED_LOCATION_${_c} "${ECGQ_TRIMMED_LIBTORCH}")
endforeach()
set_target_properties(torch_cpu PROPERTIES IMPORTED_LOCATION "${ECGQ_TRIMMED_LIBTORCH}")
target_link_libraries(ecgq_torch INTERFACE ecgq_trimmed_torch_cpu)
add_dependencies(ecgq_torch ecgq_trimmed_libtorch)

# Installed beside the programs (CMakeLists.txt gives ecgq-worker its RUNPATH).
install(FILES "${ECGQ_TRIMMED_LIBTORCH}" DESTINATION lib/ecgq)
message(STATUS "ECGQ_TRIM_LIBTORCH: programs load ${ECGQ_TRIMMED_LIBTORCH} "
               "(a trimmed copy of ${_ecgq_torch_cpu})")
