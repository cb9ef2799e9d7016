//! `seispipe`, embedded with a measure of free space that always reports the
//! same number of bytes: how the tests of the disk budget (refusing a run that
//! cannot fit, stopping below the reserve) run, since they cannot fill a real
//! disk. Usage: `fixed_free_space BYTES <seispipe arguments…>`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Reports the same number of bytes free, wherever asked.
struct Fixed(u64);

impl seispipe::io::disk::DiskProbe for Fixed {
    fn free_bytes(&self, _dir: &Path) -> seispipe::error::Result<u64> {
        Ok(self.0)
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_default();
    let Some(free) = args
        .next()
        .and_then(|a| a.to_str().and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: fixed_free_space BYTES <seispipe arguments…>");
        return ExitCode::from(2);
    };
    seispipe::app::main_from(
        std::iter::once(program).chain(args),
        None,
        Some(Arc::new(Fixed(free))),
    )
}
