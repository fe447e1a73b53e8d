use super::*;

#[test]
fn empty_builder_finishes_to_none() {
    assert!(BlockBuilder::new().finish().is_none());
}

#[test]
fn round_trip_small_block() {
    let mut b = BlockBuilder::new();
    b.add(100, "Connection refused from 10.0.0.1").unwrap();
    b.add(101, "connection reset").unwrap();
    b.add(105, "user_id missing; CONNECTION refused").unwrap();
    assert_eq!(
        b.add(105, "x"),
        Err(AddError::NotIncreasing {
            last: 105,
            got: 105
        })
    );
    let blk = b.finish().unwrap();
    assert_eq!((blk.first_row, blk.last_row, blk.rows), (100, 105, 3));
    let rows = |t: &str| -> Option<Vec<i64>> {
        postings_lookup(&blk.postings, token_hash(t))
            .unwrap()
            .map(Iterator::collect)
    };
    assert_eq!(rows("connection"), Some(vec![100, 101, 105]));
    assert_eq!(rows("REFUSED"), Some(vec![100, 105]));
    assert_eq!(rows("10"), Some(vec![100]));
    assert_eq!(rows("nope"), None);
    assert!(bloom_may_contain(&blk.bloom, token_hash("reset")));
    let q = query_hashes("connection refused");
    assert_eq!(
        block_candidates(&blk.bloom, &blk.postings, &q).unwrap(),
        vec![100, 105]
    );
    assert!(b.is_empty());
}

#[test]
fn open_block_candidates() {
    let mut b = BlockBuilder::new();
    b.add(7, "a b c").unwrap();
    b.add(9, "b c d").unwrap();
    assert_eq!(b.candidates(&query_hashes("c b")), vec![7, 9]);
    assert_eq!(b.candidates(&query_hashes("d")), vec![9]);
    assert_eq!(b.candidates(&query_hashes("e")), Vec::<i64>::new());
}

#[test]
fn span_too_large() {
    let mut b = BlockBuilder::new();
    b.add(0, "a").unwrap();
    assert_eq!(b.add(1 << 33, "a"), Err(AddError::SpanTooLarge));
}

#[test]
fn big_block_every_token_found() {
    let mut b = BlockBuilder::new();
    for i in 0..20_000i64 {
        b.add(i * 2, &format!("req{i} common{} worker{}", i % 7, i % 1000))
            .unwrap();
    }
    let blk = b.finish().unwrap();
    for i in (0..20_000i64).step_by(97) {
        let got: Vec<i64> = postings_lookup(&blk.postings, token_hash(&format!("req{i}")))
            .unwrap()
            .unwrap()
            .collect();
        assert_eq!(got, vec![i * 2]);
        let w: Vec<i64> =
            postings_lookup(&blk.postings, token_hash(&format!("worker{}", i % 1000)))
                .unwrap()
                .unwrap()
                .collect();
        assert_eq!(w.len(), 20);
        assert!(w.contains(&(i * 2)));
    }
    let c: Vec<i64> = postings_lookup(&blk.postings, token_hash("common3"))
        .unwrap()
        .unwrap()
        .collect();
    assert_eq!(
        c,
        (0..20_000i64)
            .filter(|i| i % 7 == 3)
            .map(|i| i * 2)
            .collect::<Vec<_>>()
    );
}

#[test]
fn bloom_false_positive_rate() {
    let mut b = BlockBuilder::new();
    for i in 0..50_000i64 {
        b.add(i, &format!("t{i}")).unwrap();
    }
    let blk = b.finish().unwrap();
    for i in 0..50_000 {
        assert!(bloom_may_contain(&blk.bloom, token_hash(&format!("t{i}"))));
    }
    let fp = (0..100_000)
        .filter(|i| bloom_may_contain(&blk.bloom, token_hash(&format!("u{i}"))))
        .count();
    let rate = fp as f64 / 100_000.0;
    assert!(rate < 0.02, "false positive rate {rate}");
}

#[test]
fn corrupt_blobs_do_not_panic() {
    let mut b = BlockBuilder::new();
    for i in 0..1000i64 {
        b.add(i, &format!("x{i} y{}", i % 3)).unwrap();
    }
    let blk = b.finish().unwrap();
    for cut in [0, 5, 24, 40, blk.postings.len() / 2, blk.postings.len() - 1] {
        let _ =
            postings_lookup(&blk.postings[..cut], token_hash("y1")).map(|r| r.map(Iterator::count));
    }
    assert!(bloom_may_contain(&blk.bloom[..10], 1));
    assert_eq!(PostingsHeader::parse(b"nope"), Err(FormatError::BadMagic));
}

#[test]
fn piecewise_bloom_agrees() {
    let mut b = BlockBuilder::new();
    for i in 0..5000i64 {
        b.add(i, &format!("v{i}")).unwrap();
    }
    let blk = b.finish().unwrap();
    let n = bloom_blocks(&blk.bloom[..8]).unwrap();
    for i in 0..10_000 {
        let h = token_hash(&format!("v{i}"));
        let r = bloom_probe_range(n, h);
        assert_eq!(
            bloom_block_may_contain(&blk.bloom[r], h),
            bloom_may_contain(&blk.bloom, h)
        );
    }
}

#[test]
fn radix_sort_sorts() {
    let mut v: Vec<u64> = Vec::new();
    let mut x = 12345u64;
    for off in 0..5000u64 {
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x % 7000) << 32 | off);
        }
    }
    let mut expected = v.clone();
    expected.sort_unstable();
    sort_postings(&mut v, &mut Vec::new());
    assert_eq!(v, expected);
}

#[test]
fn piecewise_postings_agree() {
    struct Counting<'a>(&'a [u8], usize);
    impl ReadAt for Counting<'_> {
        type Error = FormatError;
        fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), FormatError> {
            self.1 += buf.len();
            (&mut self.0).read_at(offset, buf)
        }
    }
    let mut b = BlockBuilder::new();
    for i in 0..16_384i64 {
        b.add(i, &format!("id{i} mod{} everyone", i % 100)).unwrap();
    }
    let blk = b.finish().unwrap();
    for t in ["id77", "mod5", "everyone", "absent", "id16383", "id0"] {
        let h = token_hash(t);
        let mut r = Counting(&blk.postings, 0);
        let got = postings_lookup_read(&mut r, h).unwrap();
        let want: Option<Vec<i64>> = postings_lookup(&blk.postings, h)
            .unwrap()
            .map(Iterator::collect);
        assert_eq!(got, want, "{t}");
        if t.starts_with("id") || t == "absent" {
            assert!(
                r.1 < 1024,
                "{t}: read {} of {} bytes",
                r.1,
                blk.postings.len()
            );
        }
    }
}

/// Rows added from their keys make the same block as rows added from text.
#[test]
fn add_keys_builds_the_same_block_as_add() {
    let texts = [
        "GET /api/v1/orders 200 in 12ms",
        "",
        "Ünïcode ÀB straße user=alice42 user=alice42",
        "x",
    ];
    let mut by_text = BlockBuilder::new();
    let mut by_keys = BlockBuilder::new();
    let mut keys = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let id = 10 + 3 * i as i64;
        by_text.add(id, t).unwrap();
        keys.clear();
        message_keys(t, &mut keys);
        by_keys.add_keys(id, &keys).unwrap();
    }
    assert_eq!(
        by_keys.add_keys(5, &[]),
        Err(AddError::NotIncreasing { last: 19, got: 5 })
    );
    assert_eq!(by_text.len(), by_keys.len());
    assert_eq!(by_text.finish(), by_keys.finish());
}
