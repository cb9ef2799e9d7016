//! The `seispipe` binary: parse, dispatch, map the outcome to an exit code.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use seispipe::cli::{Cli, Command};
use seispipe::commands;

fn main() -> ExitCode {
    keep_freed_memory_mapped();
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // First Ctrl-C: finish the chunk in flight, keep finished shards, exit 130.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(commands::EXIT_INTERRUPTED);
            }
            eprintln!("\nstopping: finishing the work in flight (Ctrl-C again to quit at once)");
        });
    }
    let outcome = match &cli.command {
        Command::Run(args) => commands::run(args, stop).map(|_| commands::EXIT_OK),
        Command::Check(args) => commands::check(args).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::Inspect { path } => commands::inspect(path).map(|s| {
            print!("{s}");
            if s.lines().any(|l| l.starts_with("error:")) {
                commands::EXIT_FAILED
            } else {
                commands::EXIT_OK
            }
        }),
        Command::Verify { dir } => commands::verify(dir).map(|(s, clean)| {
            print!("{s}");
            if clean {
                commands::EXIT_OK
            } else {
                commands::EXIT_VERIFY
            }
        }),
        Command::Synth(args) => commands::synth(args).map(|s| {
            eprint!("{s}");
            commands::EXIT_OK
        }),
        Command::Stages => {
            print!("{}", commands::stages());
            Ok(commands::EXIT_OK)
        }
        Command::Package(args) => commands::package(args).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::MakeDemoModel(args) => commands::make_demo_model(args).map(|s| {
            eprint!("{s}");
            commands::EXIT_OK
        }),
    };
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let code = commands::exit_code(&e);
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// Samples are 1.4 MB buffers allocated by reader threads and freed by the
/// writer thread. glibc would hand each back to the kernel (mmap/munmap, arena
/// trimming), so every new buffer page-faults again: ~110,000 faults per 1000
/// samples. The executor bounds how much is in flight, so keeping freed
/// memory mapped costs at most that bound.
fn keep_freed_memory_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
