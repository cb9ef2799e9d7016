//! Give the seispipe-torch binary an rpath to libtorch, which
//! tch's own rpath does not reach (see docs/pseudo-labelling.md, "libtorch set-up"), and keep
//! libtorch_cuda linked when it is complete so tch can see a GPU.

fn main() {
    println!("cargo:rerun-if-env-changed=SEISPIPE_LINK_TORCH_CUDA");
    // Set by torch-sys (a direct dependency of this crate).
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        let cuda = std::path::Path::new(&lib).join("libtorch_cuda.so");
        let wanted = std::env::var("SEISPIPE_LINK_TORCH_CUDA").map_or(true, |v| v != "0");
        if wanted && cuda.exists() && cuda_libs_complete(&cuda) {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}

/// Whether every library libtorch_cuda.so needs can be found (a slim libtorch
/// lacks the CUDA libraries, and force-linking it would kill the binary).
fn cuda_libs_complete(so: &std::path::Path) -> bool {
    std::process::Command::new("ldd")
        .arg(so)
        .output()
        .is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("not found")
        })
}
