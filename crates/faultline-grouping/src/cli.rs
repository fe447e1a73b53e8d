//! The core of `faultline group [FILE]`: one message per input line, one
//! `<group id>\t<template>` line per input line.

use std::io::{self, BufRead, Write};

use crate::grouper::{Grouper, GrouperConfig};
use crate::miner::GroupId;

/// Reads messages (one per line) and writes `<group id>\t<template>` for
/// each, after the whole input has been read: ids are resolved through the
/// merges learned from the entire input, and the template printed is the
/// group's final one. This is what the server shows once it has seen the
/// same input (its issues follow the same merges). Memory: the learned
/// templates plus 8 bytes per input line.
pub fn group_lines(
    reader: impl BufRead,
    mut writer: impl Write,
    config: &GrouperConfig,
) -> io::Result<()> {
    let mut grouper = Grouper::new(config.clone());
    let mut ids: Vec<GroupId> = Vec::new();
    // Templates of groups that may be evicted before the end, by id.
    let mut fallback: crate::hash::FxHashMap<u64, String> = Default::default();
    for_each_line(reader, |line| {
        let r = grouper.group_ref(line);
        ids.push(r.id);
        fallback
            .entry(r.id.0)
            .or_insert_with(|| r.template.to_owned());
    })?;
    let mut out = io::BufWriter::with_capacity(1 << 16, &mut writer);
    for id in ids {
        let id = grouper.resolve(id);
        let template = grouper
            .template(id)
            .or_else(|| fallback.get(&id.0).map(String::as_str))
            .unwrap_or("");
        writeln!(out, "{id}\t{template}")?;
    }
    out.flush()
}

/// Like [`group_lines`], but prints each line as soon as it is read, with
/// the id and template known at that moment (for live pipes). Groups that
/// merge later keep the ids already printed.
pub fn group_lines_streaming(
    reader: impl BufRead,
    mut writer: impl Write,
    config: &GrouperConfig,
) -> io::Result<()> {
    let mut grouper = Grouper::new(config.clone());
    let mut res = Ok(());
    for_each_line(reader, |line| {
        if res.is_ok() {
            let r = grouper.group_ref(line);
            res = writeln!(writer, "{}\t{}", r.id, r.template);
        }
    })?;
    res?;
    writer.flush()
}

/// Calls `f` with each line (without its line ending; invalid UTF-8 is
/// replaced, never fatal).
fn for_each_line(mut reader: impl BufRead, mut f: impl FnMut(&str)) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        match std::str::from_utf8(&buf) {
            Ok(s) => f(s),
            Err(_) => f(&String::from_utf8_lossy(&buf)),
        }
    }
}
