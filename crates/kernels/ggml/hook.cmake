# Puts our kernels into the llama.cpp that llama-cpp-sys-2 builds.
#
# `.cargo/config.toml` sets CMAKE_PROJECT_INCLUDE to this file, and
# llama-cpp-sys-2 hands every CMAKE_* variable to its CMake run, which
# includes this file after each project() call. At the end of the top-level
# CMakeLists (deferred, when every target exists) it swaps, in each of
# ggml's CPU modules, the source `ggml-cpu/amx/mmq.cpp` for
# `small_batch_mmq.cpp`, which includes the original and adds our kernel (see
# that file for why).
#
# A llama.cpp whose CPU modules no longer list that source stops the build
# here, so an update cannot drop the kernel without anyone noticing.

include_guard(GLOBAL)

set(IPFS_ACCELERATE_GGML_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(ipfs_accelerate_collect_targets dir out)
    get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
    get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
    foreach(subdir IN LISTS subdirs)
        ipfs_accelerate_collect_targets("${subdir}" sub_targets)
        list(APPEND targets ${sub_targets})
    endforeach()
    set(${out} ${targets} PARENT_SCOPE)
endfunction()

function(ipfs_accelerate_swap_mmq)
    ipfs_accelerate_collect_targets("${CMAKE_SOURCE_DIR}" targets)
    set(swapped "")
    foreach(target IN LISTS targets)
        get_target_property(sources ${target} SOURCES)
        if(NOT sources)
            continue()
        endif()
        set(original "")
        set(new_sources "")
        foreach(source IN LISTS sources)
            if(source MATCHES "(^|/)ggml-cpu/amx/mmq\\.cpp$")
                get_target_property(target_dir ${target} SOURCE_DIR)
                get_filename_component(original "${source}" ABSOLUTE BASE_DIR "${target_dir}")
                list(APPEND new_sources "${IPFS_ACCELERATE_GGML_DIR}/small_batch_mmq.cpp")
            else()
                list(APPEND new_sources "${source}")
            endif()
        endforeach()
        if(original)
            set_property(TARGET ${target} PROPERTY SOURCES "${new_sources}")
            set_property(TARGET ${target} APPEND PROPERTY COMPILE_DEFINITIONS
                "IPFS_ACCELERATE_GGML_MMQ_SOURCE=\"${original}\"")
            list(APPEND swapped ${target})
        endif()
    endforeach()
    if(NOT swapped)
        message(FATAL_ERROR
            "ipfs-accelerate: no target of this llama.cpp compiles ggml-cpu/amx/mmq.cpp, "
            "so our kernel (${IPFS_ACCELERATE_GGML_DIR}/small_batch_mmq.cpp) would be left out; "
            "update ${CMAKE_CURRENT_FUNCTION_LIST_FILE} for this llama.cpp")
    endif()
    message(STATUS "ipfs-accelerate: our small-batch kernel in ${swapped}")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL ipfs_accelerate_swap_mmq)
