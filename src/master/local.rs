//! The `local` host: programs run as child processes of the master, with no SSH at all.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::transport::{display_argv, BoxFuture, Output, Process, Transport, TransportError};

/// The master's own machine as a [`Transport`].
#[derive(Debug, Default)]
pub struct LocalHost;

impl LocalHost {
    fn command(argv: &[String]) -> Result<Command, TransportError> {
        let (program, args) = argv.split_first().ok_or_else(|| TransportError::Exec {
            host: "local".into(),
            command: String::new(),
            message: "empty command".into(),
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    fn exec_error(argv: &[String], err: std::io::Error) -> TransportError {
        TransportError::Exec {
            host: "local".into(),
            command: display_argv(argv),
            message: err.to_string(),
        }
    }
}

impl Transport for LocalHost {
    fn label(&self) -> &str {
        "local"
    }

    fn is_local(&self) -> bool {
        true
    }

    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> BoxFuture<'_, Result<Output, TransportError>> {
        Box::pin(async move {
            let mut cmd = Self::command(&argv)?;
            cmd.kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| Self::exec_error(&argv, e))?;
            let mut input = child.stdin.take().expect("piped stdin");
            // Feed stdin while the output is read, so that neither side blocks the other.
            let feed = async move {
                let _ = input.write_all(&stdin).await;
                drop(input);
            };
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            let out = out.map_err(|e| Self::exec_error(&argv, e))?;
            Ok(Output {
                code: out.status.code(),
                stdout: out.stdout,
                stderr: out.stderr,
            })
        })
    }

    fn spawn(&self, argv: Vec<String>) -> BoxFuture<'_, Result<Process, TransportError>> {
        Box::pin(async move {
            let mut cmd = Self::command(&argv)?;
            // Its own process group: a Ctrl+C at the terminal reaches the master only, which
            // then decides between stopping and detaching the nodes.
            cmd.process_group(0);
            let mut child = cmd.spawn().map_err(|e| Self::exec_error(&argv, e))?;
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = child.stdout.take().expect("piped stdout");
            let stderr = child.stderr.take().expect("piped stderr");
            Ok(Process {
                stdin: Box::new(stdin),
                stdout: Box::new(stdout),
                stderr: Box::new(stderr),
                exit: Box::pin(async move { child.wait().await.ok().and_then(|s| s.code()) }),
                result: None,
            })
        })
    }
}
