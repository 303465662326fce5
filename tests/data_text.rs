//! Text for character-level models: vocabulary, the 90/10 split, next-character sequences,
//! and every refusal naming the file.

use backprop::data::text::{sequences, Text, TextError, Vocab};
use std::path::Path;

#[test]
fn the_built_in_shakespeare_is_split_90_10_at_the_end() {
    let t = Text::shakespeare();
    let n = t.train.len() + t.test.len();
    assert_eq!(n, 1_158_218);
    assert_eq!(t.test.len(), 115_822); // round(0.1 n)
    let v = t.vocab.chars();
    assert_eq!(v.len(), 73);
    assert_eq!((v[0], v[1], v[72]), ('\n', ' ', '}'));
    // The test part is the end of Coriolanus, the last play.
    let tail = t.vocab.decode(&t.test[t.test.len() - 200..]);
    assert!(
        tail.contains("Coriolanus") || tail.contains("CORIOLANUS") || tail.contains("Exeunt"),
        "{tail}"
    );
    // Every id is in range.
    assert!(t
        .train
        .iter()
        .chain(&t.test)
        .all(|&i| (i as usize) < v.len()));
}

#[test]
fn sequences_are_shifted_by_one_and_do_not_overlap() {
    let ids: Vec<u32> = (0..23).collect();
    let (x, y) = sequences(&ids, 5);
    assert_eq!(x.len(), 20);
    for (a, b) in x.iter().zip(&y) {
        assert_eq!(*b, a + 1);
    }
    assert_eq!(&x[5..10], &[5, 6, 7, 8, 9]);
    // 22 = 4 * 5 + 2: the last two characters start no sequence (they would need a 6th).
    let (x, _) = sequences(&ids[..21], 5);
    assert_eq!(x.len(), 20);
    let (x, _) = sequences(&ids[..20], 5);
    assert_eq!(x.len(), 15);
}

#[test]
fn files_plain_or_gzipped_and_their_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("t.txt");
    let body = "to be or not to be, that is the question: ";
    std::fs::write(&plain, body.repeat(3)).unwrap();
    let t = Text::read(&plain).unwrap();
    assert_eq!(t.vocab.decode(&t.train[..5]), "to be");
    assert_eq!(t.train.len() + t.test.len(), 3 * body.chars().count());

    let gz = dir.path().join("t.txt.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, body.repeat(3).as_bytes()).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let g = Text::read(&gz).unwrap();
    assert_eq!((g.train, g.test), (t.train, t.test));

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"abcdefghijklmnopqrstuvwxyz\xff\xfe").unwrap();
    let e = Text::read(&bad).unwrap_err();
    assert!(matches!(e, TextError::NotUtf8 { offset: 26, .. }), "{e}");
    assert!(e.to_string().contains("bad.txt"));

    let short = dir.path().join("short.txt");
    std::fs::write(&short, "abc").unwrap();
    assert!(Text::read(&short)
        .unwrap_err()
        .to_string()
        .contains("too short"));
    let e = Text::read(Path::new("/nonexistent/t.txt")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/t.txt"), "{e}");
}

#[test]
fn vocabularies_round_trip_and_bad_ones_are_refused() {
    let v = Vocab::of("héllo wörld\n");
    assert_eq!(Vocab::from_json(&v.to_json()).unwrap(), v);
    for bad in [
        "",
        "[]",
        "[\"ab\"]",
        "[\"b\",\"a\"]",
        "[\"a\",\"a\"]",
        "{}",
        "[1]",
    ] {
        assert!(Vocab::from_json(bad).is_err(), "{bad}");
    }
    let e = v
        .encode("hello, world!", "--prime")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--prime:") && e.contains("','") && e.contains("'!'"),
        "{e}"
    );
}
