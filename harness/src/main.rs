//! `harness`: ordeal's main command. Runs a test (start a real cluster,
//! drive a workload under faults, record the history, judge it), re-judges
//! a stored run, cleans up after a killed harness, or measures itself.

mod binary;
mod catchup;
mod check;
mod cli;
mod clock;
mod disk;
mod grudge;
mod history;
mod judge;
mod lag;
mod member;
mod membership;
mod nemesis;
mod plan;
mod probe;
mod progress;
mod raft_check;
mod run;
mod runtime;
mod sampler;
mod shard;
mod soak;
mod soak_merge;
mod ssh;
mod store;
mod sut;
mod verdict;
mod workers;

use checker::verdict::Validity;
use clap::Parser;
use cli::{Cli, Command, TestArgs};
use plan::Plan;
use run::RuntimeSlot;
use runtime::Runtime;
use std::process::ExitCode;
use sut::System;
use verdict::{exit_code, EXIT_HARNESS_FAILED, EXIT_VALID};

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
        None => run_tests(&cli.test, slot).await,
        Some(Command::Check {
            dir,
            history,
            workload,
        }) => check::check(&dir, history.as_deref(), workload.as_deref()),
        Some(Command::Reap { run_label }) => {
            runtime::reaper::reap(&run_label).await?;
            Ok(EXIT_VALID)
        }
        Some(Command::Clean { store, ssh }) => {
            // Mounts first: removing a work directory must not walk into one.
            let mut cleaned = disk::clean_leftovers(&store.join(".work"))?;
            cleaned.extend(runtime::process::clean_leftovers(&store.join(".work"))?);
            if runtime::docker::daemon_answers() {
                cleaned.extend(runtime::docker::clean_leftovers().await?);
            }
            if let Some(hosts) = ssh::hosts_from(&ssh)? {
                let trust = ssh::Trust {
                    known_hosts: ssh.ssh_known_hosts.clone(),
                };
                cleaned.extend(runtime::ssh::clean_leftovers(&hosts, &trust).await?);
            }
            for c in &cleaned {
                println!("removed {c}");
            }
            println!("clean: {} leftovers removed", cleaned.len());
            Ok(EXIT_VALID)
        }
        Some(Command::Bench {
            test,
            compare_faultfs: true,
        }) => disk::bench_compare(&test, slot).await,
        Some(Command::Bench { test, .. }) => bench(&test, slot).await,
        Some(Command::Soak {
            duration_s,
            keep_valid,
            max_runs,
            suts,
            shard,
            test,
        }) => {
            let shard = shard.as_deref().map(shard::Shard::parse).transpose()?;
            let suts: Vec<String> = if suts == "auto" {
                sut::Sut::all()
                    .iter()
                    .filter(|s| s.on_host(&test))
                    .map(|s| s.name().to_string())
                    .collect()
            } else {
                suts.split(',').map(|s| s.trim().to_string()).collect()
            };
            soak::soak(
                &test,
                std::time::Duration::from_secs(duration_s),
                keep_valid,
                max_runs.unwrap_or(usize::MAX),
                &suts,
                shard,
                slot,
            )
            .await
        }
        Some(Command::SoakMerge { files, out }) => soak_merge::merge(&files, out.as_deref()),
    }
}

async fn run_tests(args: &TestArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    let mut worst = Validity::Valid;
    let mut args = args.clone();
    for attempt in 0..args.test_count.max(1) {
        if attempt > 0 {
            args.seed = None;
        }
        let plan = Plan::resolve(&args)?;
        let binary = plan.sut.binary(&plan)?;
        let outcome = run::run_test(&plan, &binary, slot).await?;
        let (ok, fail, info) = outcome.counts;
        println!(
            "\n{} seed {}: {} ops (ok {ok}, fail {fail}, info {info}) in {:.0} s",
            plan.name,
            plan.seed,
            ok + fail + info,
            outcome.workload_s
        );
        verdict::print(&outcome.results);
        println!("store: {}", outcome.dir.display());
        let valid = outcome.results.valid;
        if valid != Validity::Valid {
            println!("rerun: {}", plan.rerun_command());
        }
        worst = verdict::worst(worst, valid);
        if valid == Validity::Invalid {
            break;
        }
    }
    Ok(exit_code(worst))
}

async fn bench(args: &TestArgs, slot: &RuntimeSlot) -> anyhow::Result<u8> {
    // No faults, one run (`--rate` defaults to 0 here: as fast as the
    // cluster answers): what the harness can record.
    if args.nemesis != "none" || args.test_count != 1 || args.nemesis_interval_s != 10 {
        anyhow::bail!("harness bench runs one test without faults: --nemesis, --nemesis-interval-s and --test-count are not bench flags");
    }
    let plan = Plan::resolve(args)?;
    let binary = plan.sut.binary(&plan)?;
    let outcome = run::run_test(&plan, &binary, slot).await?;
    let cpu = outcome.workload_cpu_s;
    let (ok, fail, info) = outcome.counts;
    let ops = ok + fail + info;
    let line = serde_json::json!({
        "ops": ops, "events": outcome.events, "workload_s": outcome.workload_s,
        "ops_per_s_recorded": ops as f64 / outcome.workload_s,
        "harness_cpu_s_during_workload": cpu, "recorder_cpu_s": outcome.recorder_busy.as_secs_f64(),
        "recorder_share_of_harness_cpu": outcome.recorder_busy.as_secs_f64() / cpu.max(1e-9),
        "concurrency": plan.concurrency, "rate": plan.rate,
    });
    println!("{line}");
    Ok(exit_code(outcome.results.valid))
}
