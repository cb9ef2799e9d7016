//! The command-line program shared by the two binaries: parse, dispatch, map
//! the outcome to an exit code.
//!
//! `seispipe` is built without references to libtorch, so it starts in a few
//! milliseconds; `seispipe-torch` is the same program with the libtorch
//! backend passed in ([`main_with`]). When `seispipe` is
//! asked for something that needs libtorch (a pipeline with a `pseudo_label`
//! stage or a `simulate` stage with a `device`, `make-demo-model`), it replaces itself with `seispipe-torch` from
//! its own directory, same arguments, same process id, so signals and exit
//! codes behave as if it had done the work itself.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::model::Backend;

/// The binary that carries libtorch, looked for beside the running one.
pub const TORCH_BINARY: &str = "seispipe-torch";

/// Run the program without a model backend (the `seispipe` binary).
#[must_use]
pub fn main() -> ExitCode {
    main_with(None)
}

/// Run the program with `models` as the model backend (the `seispipe-torch`
/// binary passes libtorch's). Without one, a command that needs a model is
/// handed over to `seispipe-torch` beside this binary.
#[must_use]
pub fn main_with(models: Option<Backend>) -> ExitCode {
    main_from(std::env::args_os(), models, None)
}

/// Print `text` to stdout: the whole result of a command that succeeded.
fn printed(text: &str) -> i32 {
    print!("{text}");
    commands::EXIT_OK
}

/// [`main_with`] over the command line `args` (the program name first), for
/// programs that embed seispipe with their own model backend and, if they
/// like, their own measure of free space (`disk`; default: the kernel's).
/// A malformed command line prints clap's message and exits the process, as
/// the binary does.
#[must_use]
pub fn main_from<I, T>(
    args: I,
    models: Option<Backend>,
    disk: Option<Arc<dyn crate::io::disk::DiskProbe>>,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    keep_freed_memory_mapped();
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = Cli::parse_from(&args);
    // The environment's settings are read here, once; a value that names
    // nothing is refused before any work.
    let disk = disk.unwrap_or_else(|| Arc::new(crate::io::disk::Statvfs));
    let host = match crate::settings::Host::read(models, disk, &|k| std::env::var(k).ok()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(u8::try_from(commands::exit_code(&e)).unwrap_or(1));
        }
    };
    if host.models.is_none() {
        if let Some(code) = hand_over_to_torch(&cli, &args) {
            return code;
        }
    }
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
        Command::Run(args) => commands::run(args, stop, &host).map(|_| commands::EXIT_OK),
        Command::Merge { dir, quiet } => commands::merge(dir).map(|s| {
            if !quiet {
                eprint!("{s}");
            }
            commands::EXIT_OK
        }),
        Command::Check(args) => commands::check(args, &host).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::Inspect { path } => commands::inspect(path).map(|r| {
            print!("{}", r.text);
            if r.unreadable > 0 {
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
        Command::Synth(args) => commands::synth(args, &host).map(|s| {
            eprint!("{s}");
            commands::EXIT_OK
        }),
        Command::Host => Ok(printed(&commands::host(&host))),
        Command::Stages => Ok(printed(&commands::stages())),
        Command::Slurm(args) => commands::launch::slurm(args).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::K8s(args) => commands::launch::k8s(args).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::Package(args) => commands::package(args).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::Preview(args) => commands::preview(args).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::Report { dir } => commands::report(dir).map(|s| {
            print!("{s}");
            commands::EXIT_OK
        }),
        Command::MakeDemoModel(args) => {
            commands::make_demo_model(args, host.models.clone()).map(|s| {
                eprint!("{s}");
                commands::EXIT_OK
            })
        }
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

/// Whether the command needs libtorch. A pipeline file that does not load is
/// left to the normal path, which reports it.
fn needs_torch(cli: &Cli) -> bool {
    let pipeline = match &cli.command {
        Command::MakeDemoModel(_) => return true,
        Command::Run(args) => &args.pipeline,
        Command::Check(args) => &args.pipeline,
        // slurm, k8s and merge plan without running: no libtorch needed.
        _ => return false,
    };
    crate::pipeline::spec::load(&pipeline.pipeline, &pipeline.set)
        .is_ok_and(|spec| spec.stages.iter().any(crate::stage::StageSpec::needs_torch))
}

/// (seispipe is Linux-only: `exec` keeps the process id.)
/// In a process without libtorch, `exec` `seispipe-torch` when the command
/// needs it and that binary exists beside this one. Returns an exit code only
/// when the `exec` itself failed; `None` means carry on here (a missing
/// `seispipe-torch` is then reported where the model would load).
fn hand_over_to_torch(cli: &Cli, args: &[std::ffi::OsString]) -> Option<ExitCode> {
    use std::os::unix::process::CommandExt;
    if !needs_torch(cli) {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let torch = exe.with_file_name(TORCH_BINARY);
    if !torch.is_file() {
        return None;
    }
    let err = std::process::Command::new(&torch)
        .args(args.iter().skip(1))
        .exec();
    eprintln!("error: {}: cannot start it: {err}", torch.display());
    Some(ExitCode::from(
        u8::try_from(commands::EXIT_FAILED).unwrap_or(1),
    ))
}
