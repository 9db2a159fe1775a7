//! How long the NAT lab takes to build and tear down each site kind.

use std::time::{Duration, Instant};

use anyhow::bail;
use natlab::{Lab, Site, Topology, catalog};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Builds and drops a lab `runs` times; returns the median (build, teardown).
fn measure(sites: &[Site], runs: usize) -> anyhow::Result<(Duration, Duration)> {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for _ in 0..runs {
        let topo = sites.iter().cloned().fold(Topology::new(), Topology::site);
        let t = Instant::now();
        let lab = Lab::build(topo)?;
        up.push(t.elapsed());
        let t = Instant::now();
        drop(lab);
        down.push(t.elapsed());
    }
    Ok((median(up), median(down)))
}

pub fn run(runs: usize) -> anyhow::Result<()> {
    if !natlab::is_root() {
        bail!("the NAT lab needs root: run with sudo");
    }
    let runs = runs.max(1);
    let (base_up, base_down) = measure(&[], runs)?;
    println!("natlab bring-up / teardown, median of {runs} runs");
    println!(
        "{:<12} {:>10} {:>10} {:>14}",
        "lab", "up (ms)", "down (ms)", "up / baseline"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<12} {:>10.1} {:>10.1} {:>14}",
        "baseline",
        ms(base_up),
        ms(base_down),
        "1.00"
    );
    let all = catalog();
    for site in &all {
        let (up, down) = measure(std::slice::from_ref(site), runs)?;
        let ratio = up.as_secs_f64() / base_up.as_secs_f64().max(1e-9);
        println!(
            "{:<12} {:>10.1} {:>10.1} {:>14.2}",
            site.name,
            ms(up),
            ms(down),
            ratio
        );
    }
    let (up, down) = measure(&all, runs.min(3))?;
    let ratio = up.as_secs_f64() / base_up.as_secs_f64().max(1e-9);
    println!(
        "{:<12} {:>10.1} {:>10.1} {:>14.2}",
        "all kinds",
        ms(up),
        ms(down),
        ratio
    );
    println!("(baseline = the internet core and the server namespace, no site)");
    Ok(())
}
