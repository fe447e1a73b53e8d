//! Integration tests of the public API: property tests, persistence,
//! fingerprints of realistic events, and the `faultline group` loop.

use faultline_grouping::cli::{group_lines, group_lines_streaming};
use faultline_grouping::{
    EventInput, FingerprintRules, FingerprintSource, GroupId, Grouper, GrouperConfig, GrouperState,
    RawFingerprintRules, mask,
};
use proptest::prelude::*;

fn message() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[a-z]{1,8}",
        "[A-Z][a-z]{1,6}",
        "[A-Z_]{2,6}",
        "-?[0-9]{1,6}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{2,5})?",
        "0x[0-9a-f]{2,10}",
        "[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}",
        "[a-z]{1,5}=[a-z0-9]{0,5}",
        "/[a-z]{1,4}(/[a-z0-9.]{1,5}){0,3}",
        "https?://[a-z]{2,6}\\.com/[a-z0-9]{0,4}",
        "[0-9]{1,4}(ms|s|KB|MB| B| ms)",
        "\"[a-z ]{0,8}\"",
        "'[a-z ]{0,6}'",
        "[(\\[{<][a-z0-9]{0,4}[)\\]}>]?",
        "[.,:;=*#-]{1,4}",
        "<(num|hex|\\*|ip|path)>",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]",
        "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]",
        "(Jan|Aug|Thu) [0-9]{1,2}",
        "[a-z]{2,5}[0-9]{1,3}",
        ".{1,6}",
    ];
    prop::collection::vec(word, 0..12).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn masking_is_idempotent(m in message()) {
        let once = mask(&m);
        prop_assert_eq!(mask(&once), once.clone(), "input {:?}", m);
    }

    #[test]
    fn masking_arbitrary_text_is_idempotent(m in any::<String>()) {
        let once = mask(&m);
        prop_assert_eq!(mask(&once), once);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn grouping_twice_gives_the_same_id(history in prop::collection::vec(message(), 0..20), m in message()) {
        let mut g = Grouper::default();
        for h in &history {
            g.group(h);
        }
        let a = g.group(&m);
        let b = g.group(&m);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn ids_survive_export_and_import(history in prop::collection::vec(message(), 1..30), m in message()) {
        let mut g = Grouper::default();
        for h in &history {
            g.group(h);
        }
        let state = g.export_state();
        let json = serde_json::to_string(&state).expect("state serialises");
        let back: GrouperState = serde_json::from_str(&json).expect("state deserialises");
        prop_assert_eq!(&back, &state);
        let mut fresh = Grouper::import_state(GrouperConfig::default(), &back).expect("same version");
        for h in &history {
            let before = g.group(h).id;
            let before = g.resolve(before);
            let after = fresh.group(h).id;
            let after = fresh.resolve(after);
            prop_assert_eq!(before, after, "message {:?}", h);
        }
        prop_assert_eq!(g.group(&m), fresh.group(&m));
    }
}

#[test]
fn variable_words_merge_and_constant_words_stay_apart() {
    let mut g = Grouper::default();
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let ids: Vec<GroupId> = users
        .iter()
        .map(|u| g.group(&format!("user {u} logged in from 10.0.0.1")).id)
        .collect();
    let last = g.resolve(*ids.last().expect("ids"));
    for id in &ids {
        assert_eq!(g.resolve(*id), last);
    }
    assert_eq!(g.template(last), Some("user <*> logged in from <ip>"));
    assert!(!g.take_merges().is_empty(), "early groups were merged");

    let a = g.group("Block 7 stored as bytes in memory").id;
    let b = g.group("Block 8 stored as values in memory").id;
    assert_ne!(g.resolve(a), g.resolve(b));
    let s1 = g.group("job 1 Transitioned from NEW to RUNNING").id;
    let s2 = g.group("job 2 Transitioned from RUNNING to DONE").id;
    let s3 = g.group("job 3 Transitioned from DONE to ARCHIVED").id;
    let s4 = g.group("job 4 Transitioned from ARCHIVED to DELETED").id;
    let s5 = g.group("job 5 Transitioned from NEW to RUNNING").id;
    assert_eq!(s1, s5);
    let set: std::collections::BTreeSet<_> =
        [s1, s2, s3, s4].iter().map(|i| g.resolve(*i)).collect();
    assert_eq!(set.len(), 4, "enum states name distinct events");
}

#[test]
fn template_memory_is_bounded() {
    let cfg = GrouperConfig {
        miner: faultline_grouping::MinerConfig {
            max_templates: 100,
            ..Default::default()
        },
    };
    let mut g = Grouper::new(cfg);
    for i in 0..5000u32 {
        let w: String = (0..6)
            .map(|k| (b'a' + ((i >> (k * 2)) % 26) as u8) as char)
            .collect();
        g.group(&format!("{w} failed in stage {i}"));
        assert!(g.template_count() <= 100);
    }
}

#[test]
fn released_caches_give_memory_back_and_change_no_result() {
    let lines: Vec<String> = (0..20_000u32)
        .map(|i| {
            let w: String = (0..5)
                .map(|k| (b'a' + ((i.wrapping_mul(2_654_435_761) >> (k * 5)) % 26) as u8) as char)
                .collect();
            format!("job {w} failed on node {} after {} ms", i % 7, i)
        })
        .collect();
    let mut a = Grouper::default();
    let mut b = Grouper::default();
    for (n, l) in lines.iter().enumerate() {
        if n == lines.len() / 2 {
            let before = b.memory_estimate();
            b.release_caches();
            assert!(
                b.memory_estimate() < before / 2,
                "{} of {before} bytes kept",
                b.memory_estimate()
            );
        }
        assert_eq!(a.group(l), b.group(l), "{l}");
    }
}

/// A smaller cap (the server's shared budget when a project appears)
/// keeps the most recently seen templates, gives the memory of the others
/// back, and groups on exactly as a grouper restored from that state.
#[test]
fn a_smaller_cap_keeps_the_recent_templates_and_groups_as_a_restore() {
    let word = |i: u32| -> String {
        (0..5)
            .map(|k| (b'a' + ((i.wrapping_mul(2_654_435_761) >> (k * 5)) % 26) as u8) as char)
            .collect()
    };
    // Distinct first words: a template each.
    let lines: Vec<String> = (0..6_000u32)
        .map(|i| format!("{} {} failed", word(i), word(i + 1)))
        .collect();
    let mut g = Grouper::default();
    for l in &lines {
        g.group(l);
    }
    assert!(g.template_count() > 5_000, "{}", g.template_count());
    let before = g.memory_estimate();
    g.set_max_templates(1_000);
    assert!(g.template_count() <= 1_000 && g.template_count() >= 900);
    assert!(
        g.memory_estimate() < before / 3,
        "{} of {before}",
        g.memory_estimate()
    );
    // The most recent are kept: the last lines find their own template.
    for l in &lines[lines.len() - 800..] {
        assert_eq!(g.group(l).template, *l, "kept");
    }
    let mut restored =
        Grouper::import_state(g.config().clone(), &g.export_state()).expect("own state");
    for i in 0..3_000u32 {
        let l = if i % 3 == 0 {
            lines[(i as usize * 7) % lines.len()].clone()
        } else {
            format!("{} {} failed", word(i + 10_000), word(i))
        };
        assert_eq!(g.group(&l), restored.group(&l), "{l}");
    }
}

#[test]
fn group_lines_prints_one_line_per_input_line() {
    let input = "user alice logged in\nuser bob logged in\nuser carol logged in\nuser dave logged in\ndisk full on /dev/sda1\n\n";
    let mut out = Vec::new();
    group_lines(input.as_bytes(), &mut out, &GrouperConfig::default()).expect("in-memory io");
    let out = String::from_utf8(out).expect("utf-8");
    let lines: Vec<(&str, &str)> = out
        .lines()
        .map(|l| l.split_once('\t').expect("tab"))
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|(id, _)| id.len() == 16));
    assert_eq!(lines[0], lines[3], "batch mode resolves later merges");
    assert_eq!(lines[0].1, "user <*> logged in");
    assert_eq!(lines[4].1, "disk full on <path>");
    assert_eq!(lines[5].1, "");

    let mut out = Vec::new();
    group_lines_streaming(input.as_bytes(), &mut out, &GrouperConfig::default())
        .expect("in-memory io");
    assert_eq!(String::from_utf8(out).expect("utf-8").lines().count(), 6);
}

const PY_A: &str = "Error while loading shot 1042
Traceback (most recent call last):
  File \"/home/alice/pipeline/app/loader.py\", line 42, in load
    data = parse(text)
  File \"/home/alice/pipeline/app/parse.py\", line 7, in parse
    raise ValueError(\"bad frame range 1001-1100\")
ValueError: bad frame range 1001-1100";

const PY_B: &str = "Error while loading shot 77
Traceback (most recent call last):
  File \"/home/bob/pipeline/app/loader.py\", line 45, in load
    data = parse(text)
  File \"/home/bob/pipeline/app/parse.py\", line 9, in parse
    raise ValueError(\"bad frame range 1-10\")
ValueError: bad frame range 1-10";

#[test]
fn stack_fingerprint_ignores_lines_paths_and_values() {
    let mut g = Grouper::default();
    let a = g.fingerprint(&EventInput {
        message: PY_A,
        ..Default::default()
    });
    let b = g.fingerprint(&EventInput {
        message: PY_B,
        ..Default::default()
    });
    assert_eq!(a.source, FingerprintSource::Stack);
    assert_eq!(a.id, b.id);
    assert_eq!(
        a.parts,
        ["stack", "ValueError", "app.loader.load", "app.parse.parse"]
    );
    assert_eq!(a.exception_type.as_deref(), Some("ValueError"));
    assert_eq!(a.title, "ValueError: bad frame range 1001-1100");
    assert_eq!(a.culprit.as_deref(), Some("app.parse in parse"));

    let other = PY_B.replace("in parse", "in parse_range");
    let c = g.fingerprint(&EventInput {
        message: &other,
        ..Default::default()
    });
    assert_ne!(a.id, c.id, "a different function is a different crash");
}

#[test]
fn java_stack_in_separate_field() {
    let mut g = Grouper::default();
    let stack = "java.lang.IllegalStateException: pool exhausted (42 waiting)
\tat com.acme.db.Pool.borrow(Pool.java:88)
\tat com.acme.api.Orders.create(Orders.java:31)
\tat java.base/java.lang.Thread.run(Thread.java:829)
Caused by: java.net.SocketTimeoutException: Read timed out
\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)
\tat com.acme.db.Conn.read(Conn.java:12)
\t... 3 more";
    let f = g.fingerprint(&EventInput {
        message: "request failed",
        stack: Some(stack),
        ..Default::default()
    });
    assert_eq!(
        f.parts,
        [
            "stack",
            "java.lang.IllegalStateException",
            "java.net.SocketTimeoutException",
            "com.acme.db.Pool.borrow",
            "com.acme.api.Orders.create",
            "com.acme.db.Conn.read"
        ]
    );
    assert_eq!(f.culprit.as_deref(), Some("com.acme.db.Pool in borrow"));
}

#[test]
fn template_fingerprint_and_rules() {
    let mut g = Grouper::default();
    let a = g.fingerprint(&EventInput {
        message: "db timeout after 30s on shard 7",
        level: Some("error"),
        ..Default::default()
    });
    let b = g.fingerprint(&EventInput {
        message: "db timeout after 12s on shard 3",
        level: Some("error"),
        ..Default::default()
    });
    assert_eq!(a.source, FingerprintSource::Template);
    assert_eq!(a.id, b.id);
    assert_eq!(a.id, a.template_id);
    assert_eq!(a.template, "db timeout after <duration> on shard <num>");

    let raw: RawFingerprintRules = serde_json::from_str(
        r#"{"rules": [{"message": "db timeout*", "fingerprint": ["{{ attributes.tenant }}", "db-timeout"]}]}"#,
    )
    .expect("json");
    let rules = FingerprintRules::new(&raw).expect("valid");
    let acme = [("tenant", "acme")];
    let globex = [("tenant", "globex")];
    let x = g.fingerprint_with_rules(
        &EventInput {
            message: "db timeout after 1s on shard 1",
            attributes: &acme,
            ..Default::default()
        },
        &rules,
    );
    let y = g.fingerprint_with_rules(
        &EventInput {
            message: "db timeout after 2s on shard 9",
            attributes: &acme,
            ..Default::default()
        },
        &rules,
    );
    let z = g.fingerprint_with_rules(
        &EventInput {
            message: "db timeout after 2s on shard 9",
            attributes: &globex,
            ..Default::default()
        },
        &rules,
    );
    assert_eq!(x.source, FingerprintSource::Rule { index: 0 });
    assert_eq!(x.parts, ["acme", "db-timeout"]);
    assert_eq!(x.id, y.id);
    assert_ne!(x.id, z.id);
}

/// Every Loghub message masks idempotently (skipped when the samples are
/// not beside the repository).
#[test]
fn loghub_messages_mask_idempotently() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/loghub");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no {}", dir.display());
        return;
    };
    let mut checked = 0;
    for e in entries.flatten() {
        let Ok(files) = std::fs::read_dir(e.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).expect("utf-8 sample");
                for line in text.lines() {
                    let once = mask(line);
                    assert_eq!(mask(&once), once, "line {line:?}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0);
}
