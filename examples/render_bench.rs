//! Zone rendering benchmark (bench/run.sh): render + atomic write of a zone with N
//! names, as the publisher does per publication (each row through the publisher's
//! own check, SPEC 17, as `render_zone` does); prints the median in ms per N.

use dedyn_update::config::settings::Config;
use dedyn_update::publish::check::{Row, ZoneCheck};
use dedyn_update::publish::zone::{render, write_atomically};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Instant;

/// Runs per size; the median is reported (the first run also warms the page cache).
const RUNS: usize = 5;

fn main() {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: render_bench DIR N [N...]   (prints: names=N render_ms=… write_ms=… total_ms=…)";
    let dir = PathBuf::from(args.next().expect(usage));
    let sizes: Vec<usize> = args.map(|a| a.parse().expect(usage)).collect();
    assert!(!sizes.is_empty(), "{usage}");
    let mut zone = Config::defaults().zones[0].clone();
    zone.include = None;
    for n in sizes {
        zone.file = dir.join(format!("bench-{n}.zone"));
        // One A record per name, names in the store's order (sorted by name).
        let mut records: Vec<(String, IpAddr)> = (0..n)
            .map(|i| {
                let ip = Ipv4Addr::from(0x0a00_0000u32 + i as u32);
                (format!("h{i}.{}", zone.name), IpAddr::V4(ip))
            })
            .collect();
        records.sort();
        let mut times = Vec::with_capacity(RUNS);
        for run in 0..RUNS {
            let t0 = Instant::now();
            let mut text = Vec::new();
            let mut check = ZoneCheck::new(&zone.name);
            let rendered = render(
                &zone,
                60,
                2_000_000_000 + run as u32,
                None,
                |emit| -> Result<usize, ()> {
                    for (name, ip) in &records {
                        let row = Row::Address { name, addr: *ip };
                        if check.row(&row).is_ok() {
                            emit(name, 60, *ip);
                        }
                    }
                    Ok(records.len())
                },
                &mut text,
            );
            assert_eq!(rendered, Ok(n));
            let t1 = Instant::now();
            write_atomically(&zone.file, &text).expect("write zone file");
            let t2 = Instant::now();
            times.push(((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3));
        }
        times.sort_by(|a, b| (a.0 + a.1).total_cmp(&(b.0 + b.1)));
        let (r, w) = times[RUNS / 2];
        println!(
            "names={n} render_ms={r:.1} write_ms={w:.1} total_ms={:.1}",
            r + w
        );
        let _ = std::fs::remove_file(&zone.file);
    }
}
