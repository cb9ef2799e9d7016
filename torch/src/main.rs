//! The `seispipe-torch` binary: the `seispipe` program with the libtorch
//! backend passed in, for pseudo-labelling and `make-demo-model`. `seispipe`
//! hands those commands over to it; it can also be called directly.

fn main() -> std::process::ExitCode {
    seispipe::app::main_with(Some(seispipe_torch::backend()))
}
