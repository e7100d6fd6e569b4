//! One module per subcommand: each has clap `Args` and `run(&Globals, Args)`.

pub mod ansible;
pub mod build;
pub mod config;
pub mod deploy;
pub mod deployments;
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
