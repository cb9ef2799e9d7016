//! Signal processing shared by stages: the short-time Fourier transform
//! ([`stft`]) with `torch.stft` / librosa conventions, built on rustfft. Plans
//! and windows are made once and shared read-only; every worker brings its own
//! scratch, so no allocation happens per trace.

pub mod stft;
