//! `harness`: ordeal's main command. Runs a test (start a real cluster,
//! drive a workload under faults, record the history, judge it), re-judges
//! a stored run, cleans up after a killed harness, or measures itself.

// The layers, top to bottom (ARCHITECTURE.md, "harness/"): a module
// imports only from its own layer or those below it
// (`tests/it/layers.rs` keeps it so).
mod binary;
mod cli;
mod cluster;
mod history;
mod judge;
mod nemesis;
mod plan;
mod run;
mod runtime;
mod soak;
mod store;
mod sut;

use clap::Parser;
use cli::{Cli, Command};
use judge::verdict::{EXIT_HARNESS_FAILED, EXIT_VALID};
use run::RuntimeSlot;
use runtime::verbs::Runtime;
use std::process::ExitCode;
use sut::System;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,harness=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness: error: starting tokio: {e}");
            return ExitCode::from(EXIT_HARNESS_FAILED);
        }
    };
    let slot: RuntimeSlot = Default::default();
    let code = runtime.block_on(async {
        tokio::select! {
            r = dispatch(cli, &slot) => r,
            _ = interrupted() => {
                eprintln!("harness: interrupted; tearing down the cluster");
                let rt = slot.lock().expect("slot lock").take();
                if let Some(rt) = rt {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), async { rt.lock().await.teardown().await }).await;
                }
                Ok(130)
            }
        }
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("harness: error: {e:#}");
            ExitCode::from(EXIT_HARNESS_FAILED)
        }
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (`kill`, a CI job cancelled): either tears
/// the cluster down before the harness exits.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn dispatch(cli: Cli, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    match cli.command {
        None => cli::test::run_tests(&cli.test, slot).await,
        Some(Command::Check {
            dir,
            history,
            workload,
        }) => cli::check::check(&dir, history.as_deref(), workload.as_deref()),
        Some(Command::Reap { run_label }) => {
            runtime::reaper::reap(&run_label).await?;
            Ok(EXIT_VALID)
        }
        Some(Command::Clean { store, ssh }) => {
            cli::clean::clean(&store, &ssh).await?;
            Ok(EXIT_VALID)
        }
        Some(Command::Bench {
            test,
            compare_faultfs: true,
            ..
        }) => cli::bench::compare_faultfs(&test, slot).await,
        Some(Command::Bench {
            test,
            compare_suts: Some(suts),
            ..
        }) => cli::bench::compare_suts(&test, &suts, slot).await,
        Some(Command::Bench { test, .. }) => cli::bench::bench(&test, slot).await,
        Some(Command::Soak {
            duration_s,
            keep_valid,
            max_runs,
            suts,
            shard,
            steer,
            test,
        }) => {
            let shard = shard
                .as_deref()
                .map(soak::shard::Shard::parse)
                .transpose()?;
            let suts: Vec<String> = if suts == "auto" {
                sut::Sut::all()
                    .iter()
                    .filter(|s| s.on_host(&test.binaries()))
                    .map(|s| s.name().to_string())
                    .collect()
            } else {
                suts.split(',').map(|s| s.trim().to_string()).collect()
            };
            soak::soak(
                &test,
                soak::Limits {
                    duration: std::time::Duration::from_secs(duration_s),
                    keep_valid,
                    max_runs: max_runs.unwrap_or(usize::MAX),
                },
                &suts,
                shard,
                steer,
                slot,
            )
            .await
        }
        Some(Command::SoakMerge { files, out }) => soak::merge::merge(&files, out.as_deref()),
    }
}
