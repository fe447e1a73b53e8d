//! `group`: reads one message per line on stdin (or from the file given as
//! the first argument) and prints `<group id>\t<template>` per line — the
//! interface of `faultline group [FILE]`. `--streaming` prints each line as
//! it is read instead of after the whole input.

use std::io::{self, BufReader};

use faultline_grouping::GrouperConfig;
use faultline_grouping::cli::{group_lines, group_lines_streaming};

fn main() -> io::Result<()> {
    let mut streaming = false;
    let mut file = None;
    for a in std::env::args().skip(1) {
        if a == "--streaming" {
            streaming = true;
        } else {
            file = Some(a);
        }
    }
    let config = GrouperConfig::default();
    let stdout = io::stdout().lock();
    let run = |r: Box<dyn io::BufRead>| {
        if streaming {
            group_lines_streaming(r, stdout, &config)
        } else {
            group_lines(r, stdout, &config)
        }
    };
    match file {
        Some(path) => run(Box::new(BufReader::new(std::fs::File::open(path)?))),
        None => run(Box::new(io::stdin().lock())),
    }
}
