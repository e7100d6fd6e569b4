//! `--network` and `--network-allow`, shared by `run`, `stage` and `build`.

use vauban_core::sandbox::Network;

/// The sandbox's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// A network namespace of its own: no host service is reachable; HTTP(S)
    /// and DNS go out through vauban's proxy, to public addresses only.
    Isolated,
    /// The host's network namespace: everything this user can reach.
    Host,
}

/// The network options of a command that runs a sandbox.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Network")]
pub struct NetworkArgs {
    /// The sandbox's network [default: `network:` of config.yml for a build,
    /// else isolated].
    #[arg(long, value_enum, value_name = "MODE", env = "VAUBAN_NETWORK")]
    pub network: Option<NetworkMode>,

    /// A host an isolated sandbox may reach whatever its address, e.g. a
    /// mirror on a private network (repeatable): HOST, HOST:PORT, *.DOMAIN,
    /// ADDRESS or ADDRESS/PREFIX.
    #[arg(long = "network-allow", value_name = "HOST")]
    pub allow: Vec<String>,
}

impl NetworkArgs {
    /// The network asked for; `None` when neither option was given.
    pub fn network(&self) -> anyhow::Result<Option<Network>> {
        vauban_core::sandbox::network::check_allow(&self.allow).map_err(anyhow::Error::msg)?;
        Ok(match self.network {
            Some(NetworkMode::Host) if !self.allow.is_empty() => {
                anyhow::bail!("--network-allow is for an isolated network, not --network host")
            }
            Some(NetworkMode::Host) => Some(Network::Host),
            Some(NetworkMode::Isolated) => Some(Network::Isolated {
                allow: self.allow.clone(),
            }),
            None if self.allow.is_empty() => None,
            None => Some(Network::Isolated {
                allow: self.allow.clone(),
            }),
        })
    }
}
