//! Recognising a device that ran out of memory, so that a CUDA endpoint can
//! fall back to the CPU instead of failing.
//!
//! candle passes the CUDA libraries' errors up as text inside its own error
//! type, so the test is on the message: the driver's
//! `CUDA_ERROR_OUT_OF_MEMORY`, cuBLAS's `CUBLAS_STATUS_ALLOC_FAILED`, and the
//! runtime's "out of memory".

/// The markers, lower-cased, that mean a device allocation failed.
const MARKERS: &[&str] = &[
    "cuda_error_out_of_memory",
    "cublas_status_alloc_failed",
    "cudaerrormemoryallocation",
    "out of memory",
];

/// True when an error with this message is a device running out of memory.
pub fn is_out_of_memory(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    MARKERS.iter().any(|marker| message.contains(marker))
}

#[cfg(test)]
mod tests {
    use super::is_out_of_memory;

    #[test]
    fn recognises_cuda_allocation_failures() {
        // As cudarc's DriverError and cuBLAS errors display through candle.
        assert!(is_out_of_memory(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"
        ));
        assert!(is_out_of_memory("cublas error: CUBLAS_STATUS_ALLOC_FAILED"));
        assert!(is_out_of_memory("CUDA out of memory while allocating"));
        assert!(!is_out_of_memory("shape mismatch in matmul"));
        assert!(!is_out_of_memory("DriverError(CUDA_ERROR_INVALID_VALUE)"));
    }
}
