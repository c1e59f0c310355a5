//! With llama.cpp (feature `llama-cpp`), the binary loads its shared
//! libraries (`libllama.so.0`, `libggml*.so.0`) at start: the folder the
//! build installed them in goes into its run path, so it starts from
//! anywhere, not only under `cargo run`/`cargo test` (which set the library
//! path themselves).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    // llama-cpp-sys-2 (`links = "llama"`) reports `<out>/backends`; the
    // libraries are in `<out>/lib`.
    if let Ok(backends) = std::env::var("DEP_LLAMA_BACKENDS_DIR") {
        if let Some(out) = std::path::Path::new(&backends).parent() {
            for dir in ["lib", "lib64"] {
                let lib = out.join(dir);
                if lib.is_dir() {
                    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
                }
            }
        }
    }
}
