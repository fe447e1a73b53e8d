//! Follows files and prints records: `cargo run -p faultline-tail --example
//! follow -- [--state FILE] [--beginning] [--multiline] GLOB...`.
//! Acknowledges everything it printed, so a restart continues after it.

use std::time::Duration;

use faultline_tail::{MultilineConfig, StartAt, Tailer, TailerConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut globs = Vec::new();
    let mut state = None;
    let mut start_at = StartAt::End;
    let mut multiline = false;
    let mut quiet = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--state" => state = args.next().map(Into::into),
            "--beginning" => start_at = StartAt::Beginning,
            "--multiline" => multiline = true,
            "--quiet" => quiet = true,
            _ => globs.push(a),
        }
    }
    let mut cfg = TailerConfig::new(globs);
    cfg.checkpoint_path = state;
    cfg.start_at = start_at;
    cfg.multiline = multiline.then(MultilineConfig::default);
    let mut tailer = Tailer::new(cfg)?;
    let mut out = Vec::new();
    loop {
        out.clear();
        tailer.poll(&mut out, Duration::from_secs(1));
        for r in &out {
            if !quiet {
                println!("{} {}: {}", r.file.path.display(), r.offset_start, r.text);
            }
            tailer.ack(r.ack());
        }
    }
}
