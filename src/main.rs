//! The `seispipe` binary. It never references libtorch, so it starts fast;
//! commands that need a model hand over to `seispipe-torch` (see
//! `seispipe::app`).

fn main() -> std::process::ExitCode {
    seispipe::app::main()
}
