//! `[monitor] hosts`: the master samples each listed host's /proc (CPU, load, memory, network)
//! once a second during the run — one sampler per host however many nodes it carries — and
//! the samples join the results, and so the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::collect::Collected;
use super::ssh::SshOptions;
use super::transport::{self, argv, exec_ok, Transport};
use crate::monitor::proc::{parse_concatenated, sample, ProcSnapshot, REMOTE_COMMAND};
use crate::result::{HostResources, ResourceSample};

/// Samplers of the monitored hosts.
pub struct Sampler {
    /// Set to true to end every sampler.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<HostResources>>,
}

impl Sampler {
    /// Starts one sampler per distinct host in `hosts`.
    pub fn start(hosts: &[String], ssh: &Arc<SshOptions>) -> Sampler {
        let (stop, rx) = watch::channel(false);
        let mut seen = Vec::new();
        let mut tasks = Vec::new();
        for name in hosts {
            if seen.contains(name) {
                continue;
            }
            seen.push(name.clone());
            let Some(host) = transport::for_name(name, "[monitor] hosts", ssh) else {
                eprintln!("bench-master: [monitor] host {name:?} is not a valid host name");
                continue;
            };
            tasks.push(tokio::spawn(sample_host(name.clone(), host, rx.clone())));
        }
        Sampler { stop, tasks }
    }

    /// Stops the samplers and returns what they measured.
    pub async fn stop(self) -> Vec<HostResources> {
        let _ = self.stop.send(true);
        let mut out = Vec::new();
        for task in self.tasks {
            if let Ok(resources) = task.await {
                out.push(resources);
            }
        }
        out
    }
}

/// Samples one host every second until told to stop.
async fn sample_host(
    name: String,
    host: Arc<dyn Transport>,
    mut stop: watch::Receiver<bool>,
) -> HostResources {
    let started = Instant::now();
    let mut samples: Vec<ResourceSample> = Vec::new();
    let mut prev: Option<ProcSnapshot> = None;
    let mut warned = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let words = argv(REMOTE_COMMAND.split_whitespace());
    loop {
        tokio::select! {
            // Time for the next sample.
            _ = tick.tick() => {}
            // The run ended.
            _ = stop.changed() => break,
        }
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            exec_ok(host.as_ref(), words.clone(), Vec::new()),
        )
        .await;
        let snapshot = match read {
            Ok(Ok(out)) => {
                parse_concatenated(&String::from_utf8_lossy(&out.stdout)).map_err(|e| e.to_string())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 5 s".into()),
        };
        match snapshot {
            Ok(now) => {
                if let Some(p) = &prev {
                    samples.push(sample(p, &now, started.elapsed().as_millis() as u64));
                }
                prev = Some(now);
            }
            Err(e) if !warned => {
                warned = true;
                eprintln!("bench-master: monitoring {name}: {e}");
            }
            Err(_) => {}
        }
    }
    HostResources {
        host: name,
        role: "monitor".into(),
        samples,
    }
}

/// Adds the monitored hosts' samples to the first collected result, so that they reach the
/// report with the rest.
pub fn attach_resources(collected: &Collected, resources: Vec<HostResources>) {
    let (Some(first), false) = (collected.results.first(), resources.is_empty()) else {
        return;
    };
    let updated = crate::result::read::read_file(first)
        .map_err(|e| e.to_string())
        .and_then(|mut result| {
            result.resources.extend(resources);
            crate::result::write::write_file(&result, first).map_err(|e| e.to_string())
        });
    if let Err(e) = updated {
        eprintln!(
            "bench-master: monitoring samples not added to {}: {e}",
            first.display()
        );
    }
}
