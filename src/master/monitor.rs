//! `[monitor] hosts`: the master samples each listed host's /proc over its transport (running
//! [`REMOTE_COMMAND`]) with the one sampling loop of [`crate::monitor::sampler`] — one sampler
//! per host however many nodes it carries — and the samples join the results, and so the
//! report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ssh::SshOptions;
use super::transport::{self, argv, exec_ok, Transport};
use crate::monitor::proc::{parse_concatenated, ProcSnapshot, REMOTE_COMMAND};
use crate::monitor::sampler::{Sampler, INTERVAL};
use crate::result::HostResources;

/// Longest wait for one host's /proc.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The samplers of the monitored hosts, by host name.
pub struct Monitors {
    samplers: Vec<(String, Sampler)>,
}

impl Monitors {
    /// Starts one sampler per distinct host in `hosts`; sample times are ms from now.
    pub fn start(hosts: &[String], ssh: &Arc<SshOptions>) -> Monitors {
        let started = Instant::now();
        let mut samplers: Vec<(String, Sampler)> = Vec::new();
        for name in hosts {
            if samplers.iter().any(|(n, _)| n == name) {
                continue;
            }
            let Some(host) = transport::for_name(name, "[monitor] hosts", ssh) else {
                eprintln!("bench-master: [monitor] host {name:?} is not a valid host name");
                continue;
            };
            let warn = {
                let name = name.clone();
                move |e: String| eprintln!("bench-master: monitoring {name}: {e}")
            };
            let read = move || read_remote(host.clone());
            samplers.push((name.clone(), Sampler::start(INTERVAL, started, read, warn)));
        }
        Monitors { samplers }
    }

    /// Stops the samplers and returns what they measured.
    pub async fn stop(self) -> Vec<HostResources> {
        let mut out = Vec::new();
        for (host, sampler) in self.samplers {
            out.push(HostResources {
                host,
                role: crate::result::HostRole::Monitor,
                samples: sampler.stop().await,
            });
        }
        out
    }
}

/// One snapshot of `host`'s /proc, read over its transport.
async fn read_remote(host: Arc<dyn Transport>) -> Result<ProcSnapshot, String> {
    let words = argv(REMOTE_COMMAND.split_whitespace());
    match tokio::time::timeout(READ_TIMEOUT, exec_ok(host.as_ref(), words, Vec::new())).await {
        Ok(Ok(out)) => {
            parse_concatenated(&String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", READ_TIMEOUT.as_secs())),
    }
}
