//! One module per subcommand: each has clap `Args` and `run(&Globals, Args)`.

/// `println!` that ends vauban quietly when the reader went away (`| head`),
/// as a Unix tool does, instead of panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

pub mod ansible;
pub mod build;
pub mod config;
pub mod deploy;
pub mod deployments;
pub mod diff;
pub mod disk;
pub mod drift;
pub mod executor;
pub mod fsck;
pub mod gc;
pub mod hosts;
pub mod images;
pub mod import;
pub mod inspect;
pub mod keys;
pub mod login;
pub mod network;
pub mod progress;
pub mod pull;
pub mod push;
pub mod remote;
pub mod rm;
pub mod rollback;
pub mod run;
pub mod serve;
pub mod stage;
pub mod tag;
pub mod unpack;
