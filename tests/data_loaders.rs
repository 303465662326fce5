//! Every loader on good files and on broken files generated here.

use backprop::data::csv::{parse_labeled_csv, parse_matrix_csv, read_labeled_csv};
use backprop::data::idx::{load_idx_dir, load_idx_pair, parse_idx, read_idx, IdxType};
use backprop::data::{digits, synthetic, DataError, DataSource, Dataset, Scaling, ScalingKind};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};

fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// 3 images of 2x2 and their labels 2, 0, 1.
fn good_pair() -> (Vec<u8>, Vec<u8>) {
    (
        idx_bytes(8, &[3, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]),
        idx_bytes(8, &[3], &[2, 0, 1]),
    )
}

#[test]
fn idx_plain_and_gzip_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = good_pair();
    let plain = load_idx_pair(
        &write(dir.path(), "i", &images),
        &write(dir.path(), "l", &labels),
    )
    .unwrap();
    let gz = load_idx_pair(
        &write(dir.path(), "i.gz", &gzip(&images)),
        &write(dir.path(), "l.gz", &gzip(&labels)),
    )
    .unwrap();
    assert_eq!(plain, gz);
    assert_eq!(plain.len(), 3);
    assert_eq!(plain.features, 4);
    assert_eq!(plain.classes, 3);
    assert_eq!(plain.image_shape, Some((2, 2)));
    assert_eq!(plain.labels, vec![2, 0, 1]);
    assert_eq!(plain.input(2), &[8.0, 9.0, 10.0, 255.0]);
}

#[test]
fn idx_other_element_types() {
    // i16 big-endian: -2, 300
    let a = parse_idx(
        &idx_bytes(0x0B, &[2], &[0xFF, 0xFE, 0x01, 0x2C]),
        "a".as_ref(),
    )
    .unwrap();
    assert_eq!((a.kind, a.get(0), a.get(1)), (IdxType::I16, -2.0, 300.0));
    // f64 big-endian
    let mut data = 1.5f64.to_be_bytes().to_vec();
    data.extend_from_slice(&(-0.25f64).to_be_bytes());
    let a = parse_idx(&idx_bytes(0x0E, &[1, 2], &data), "a".as_ref()).unwrap();
    assert_eq!((a.get(0), a.get(1)), (1.5, -0.25));
    // f32 and i32
    let a = parse_idx(&idx_bytes(0x0D, &[1], &2.5f32.to_be_bytes()), "a".as_ref()).unwrap();
    assert_eq!(a.get(0), 2.5);
    let a = parse_idx(&idx_bytes(0x0C, &[1], &(-7i32).to_be_bytes()), "a".as_ref()).unwrap();
    assert_eq!(a.get(0), -7.0);
}

fn err_of(r: Result<impl std::fmt::Debug, DataError>) -> DataError {
    r.expect_err("must fail")
}

#[test]
fn idx_wrong_magic_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad-images", b"\x12\x34\x08\x03rest of it");
    let e = err_of(read_idx(&p));
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                magic: 0x12340803,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("bad-images"), "{e}");
    let e = err_of(parse_idx(&idx_bytes(0x07, &[1], &[0]), "x".as_ref()));
    assert!(
        matches!(e, DataError::UnknownIdxType { code: 7, .. }),
        "{e:?}"
    );
}

#[test]
fn idx_truncated_and_trailing_data() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = good_pair();
    let p = write(dir.path(), "short", &images[..images.len() - 1]);
    let e = err_of(read_idx(&p));
    assert!(
        matches!(
            e,
            DataError::SizeMismatch {
                claimed: 12,
                actual: 11,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("short") && e.to_string().contains("truncated"));
    let mut long = images.clone();
    long.push(0);
    let e = err_of(read_idx(&write(dir.path(), "long", &long)));
    assert!(matches!(
        e,
        DataError::SizeMismatch {
            claimed: 12,
            actual: 13,
            ..
        }
    ));
    // Truncated in the middle of the dimensions.
    let e = err_of(read_idx(&write(dir.path(), "dims", &images[..6])));
    assert!(matches!(e, DataError::SizeMismatch { .. }), "{e:?}");
    // The same, gzipped: the gzip stream is fine, the IDX inside is short.
    let e = err_of(read_idx(&write(
        dir.path(),
        "short.gz",
        &gzip(&images[..images.len() - 1]),
    )));
    assert!(matches!(
        e,
        DataError::SizeMismatch {
            claimed: 12,
            actual: 11,
            ..
        }
    ));
}

#[test]
fn idx_huge_header_fails_without_allocating() {
    // 4e9 images of 255 x 255 pixels: 2.6e14 bytes claimed. If the reader trusted the
    // header it would abort on allocation; it must return an error instead.
    let dir = tempfile::tempdir().unwrap();
    let claim = idx_bytes(8, &[4_000_000_000, 255, 255], &[1, 2, 3, 4]);
    let e = err_of(read_idx(&write(dir.path(), "huge", &claim)));
    assert!(
        matches!(
            e,
            DataError::SizeMismatch {
                claimed: 260_100_000_000_000,
                actual: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let e = err_of(read_idx(&write(dir.path(), "huge.gz", &gzip(&claim))));
    assert!(
        matches!(e, DataError::SizeMismatch { actual: 4, .. }),
        "{e:?}"
    );
    // 255 dimensions of 2^32 - 1: the product overflows u64.
    let e = err_of(parse_idx(
        &idx_bytes(8, &[u32::MAX; 255], &[]),
        "x".as_ref(),
    ));
    assert!(
        matches!(
            e,
            DataError::SizeMismatch {
                claimed: u64::MAX,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn idx_corrupt_and_truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = good_pair();
    let gz = gzip(&images);
    // Cut the stream in half.
    let e = err_of(read_idx(&write(dir.path(), "cut.gz", &gz[..gz.len() / 2])));
    assert!(
        matches!(e, DataError::Gzip { .. } | DataError::SizeMismatch { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("cut.gz"), "{e}");
    // Flip bytes in the deflate data (after the 10-byte gzip header).
    let mut bad = gz.clone();
    let end = bad.len() - 8;
    for b in &mut bad[10..end] {
        *b ^= 0x5A;
    }
    let e = err_of(read_idx(&write(dir.path(), "corrupt.gz", &bad)));
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert!(e.to_string().contains("corrupt.gz"), "{e}");
    // A wrong CRC: the data decompresses but the checksum does not match.
    let mut crc = gz.clone();
    let n = crc.len();
    crc[n - 8] ^= 0xFF;
    let e = err_of(read_idx(&write(dir.path(), "crc.gz", &crc)));
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
}

#[test]
fn idx_empty_file_and_mismatched_counts() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_of(read_idx(&write(dir.path(), "empty", b"")));
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    let (images, _) = good_pair();
    let i = write(dir.path(), "i", &images);
    let l = write(dir.path(), "l", &idx_bytes(8, &[2], &[0, 1]));
    let e = err_of(load_idx_pair(&i, &l));
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{} holds 3 images but {} holds 2 labels",
            i.display(),
            l.display()
        )
    );
    // Labels with two dimensions.
    let l2 = write(dir.path(), "l2", &idx_bytes(8, &[3, 1], &[0, 1, 2]));
    assert!(matches!(
        err_of(load_idx_pair(&i, &l2)),
        DataError::BadIdxShape { .. }
    ));
    // Negative labels (i8).
    let l3 = write(dir.path(), "l3", &idx_bytes(9, &[3], &[0, 0xFF, 1]));
    assert!(matches!(
        err_of(load_idx_pair(&i, &l3)),
        DataError::BadLabel { index: 1, .. }
    ));
}

#[test]
fn idx_directory_plain_gz_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = good_pair();
    write(dir.path(), "train-images-idx3-ubyte.gz", &gzip(&images));
    write(dir.path(), "train-labels-idx1-ubyte", &labels);
    let e = err_of(load_idx_dir(dir.path()));
    assert!(
        matches!(
            e,
            DataError::MissingFile {
                name: "t10k-images-idx3-ubyte",
                ..
            }
        ),
        "{e:?}"
    );
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &idx_bytes(8, &[1, 2, 2], &[1, 2, 3, 4]),
    );
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&idx_bytes(8, &[1], &[1])),
    );
    let s = load_idx_dir(dir.path()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (3, 1));
    assert_eq!((s.train.classes, s.test.classes), (3, 3));
    let via_source = DataSource::parse(dir.path().to_str().unwrap(), None)
        .unwrap()
        .load(0.2, 0)
        .unwrap();
    assert_eq!(via_source, s);
}

#[test]
fn digits_has_the_readme_counts_and_a_stable_split() {
    let d = digits::load();
    assert_eq!(d.len(), 1797);
    assert_eq!((d.features, d.classes), (64, 10));
    assert_eq!(
        d.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(d.inputs.iter().cloned().fold(0.0f32, f32::max), 16.0);
    // sklearn's first image is a 0 whose first row is 0, 0, 5, 13, 9, 1, 0, 0.
    assert_eq!(d.labels[0], 0);
    assert_eq!(&d.input(0)[..8], &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
    let a = digits::split();
    let b = digits::split();
    assert_eq!(a, b);
    assert_eq!((a.train.len(), a.test.len()), (1438, 359));
    assert_eq!(
        a.test.class_counts(),
        vec![36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    );
    // Every image is in exactly one part: the parts' pixel sums add up.
    let sum = |d: &Dataset| d.inputs.iter().map(|&x| x as f64).sum::<f64>();
    assert_eq!(sum(&a.train) + sum(&a.test), sum(&d));
    assert_eq!(
        DataSource::parse("digits", None)
            .unwrap()
            .load(0.2, 99)
            .unwrap(),
        a
    );
}

#[test]
fn digits_embedded_bytes_match_the_csv_copy() {
    // The shared CSV copy (when present) holds the same images and labels.
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/digits/digits.csv");
    if let Ok(d) = read_labeled_csv(&p) {
        assert_eq!(d, {
            let mut e = digits::load();
            e.image_shape = None;
            e
        });
    }
}

#[test]
fn csv_labeled_good_header_and_errors() {
    let p: &Path = "train.csv".as_ref();
    let d = parse_labeled_csv("label,p1,p2\n3, 1.5, 2\n\n0,0,1e2\n", p).unwrap();
    assert_eq!(d.labels, vec![3, 0]);
    assert_eq!(d.inputs, vec![1.5, 2.0, 0.0, 100.0]);
    assert_eq!(d.classes, 4);
    let e = |text: &str| parse_labeled_csv(text, p).unwrap_err();
    assert!(matches!(e(""), DataError::Empty { .. }));
    assert!(matches!(e("label,a\n"), DataError::Empty { .. }));
    let r = e("1,2,3\n0,1\n");
    assert!(
        matches!(
            r,
            DataError::Ragged {
                line: 2,
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        r.to_string(),
        "train.csv: line 2: 2 columns, but the first row has 3"
    );
    let r = e("1,2,3\n0,1,x\n");
    assert!(
        matches!(
            r,
            DataError::BadCell {
                line: 2,
                column: 3,
                ..
            }
        ),
        "{r:?}"
    );
    for cell in ["nan", "inf", "-inf", "NaN", "1e999"] {
        let r = e(&format!("1,2,3\n0,1,{cell}\n"));
        assert!(
            matches!(
                r,
                DataError::BadCell {
                    line: 2,
                    column: 3,
                    ..
                }
            ),
            "{cell}: {r:?}"
        );
    }
    let r = e("1,2\n-1,3\n");
    assert!(matches!(r, DataError::CsvLabel { line: 2, .. }), "{r:?}");
    assert_eq!(
        r.to_string(),
        "train.csv: line 2, column 1: label \"-1\" is not an integer from 0 to 9999"
    );
    assert!(matches!(e("1.5,2\n"), DataError::CsvLabel { line: 1, .. }));
    assert!(matches!(e("4000000000,2\n"), DataError::CsvLabel { .. }));
    assert!(matches!(e("1\n2\n"), DataError::NoFeatures { line: 1, .. }));
    // A non-numeric cell on the first line that is not in the label column: an error,
    // not a header.
    assert!(matches!(
        e("1,x\n"),
        DataError::BadCell {
            line: 1,
            column: 2,
            ..
        }
    ));
}

#[test]
fn csv_files_and_source_with_test_file() {
    let dir = tempfile::tempdir().unwrap();
    let train = write(dir.path(), "train.csv", b"0,1,2\n1,3,4\n2,5,6\n");
    let test = write(dir.path(), "test.csv", b"label,a,b\n1,7,8\n");
    let s = DataSource::parse(train.to_str().unwrap(), Some(&test))
        .unwrap()
        .load(0.2, 0)
        .unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.test.classes), (3, 1, 3));
    let wide = write(dir.path(), "wide.csv", b"1,7,8,9\n");
    let e = DataSource::parse(train.to_str().unwrap(), Some(&wide))
        .unwrap()
        .load(0.2, 0)
        .unwrap_err();
    assert!(matches!(
        e,
        DataError::FeatureMismatch {
            expected: 2,
            found: 3,
            ..
        }
    ));
    let e = read_labeled_csv(&dir.path().join("missing.csv")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }) && e.to_string().contains("missing.csv"));
    let e = DataSource::parse("digits", Some(&test)).unwrap_err();
    assert!(matches!(e, DataError::BadSource { .. }));
    assert!(DataSource::parse("xor:0", None).is_err());
    assert!(DataSource::parse(dir.path().join("nope.csv").to_str().unwrap(), None).is_err());
}

#[test]
fn csv_byte_order_mark_and_crlf() {
    let p: &Path = "bom.csv".as_ref();
    let d = parse_labeled_csv("\u{feff}1,2,3\r\n0,4,5\r\n", p).unwrap();
    assert_eq!(
        (d.labels.clone(), d.inputs.clone()),
        (vec![1, 0], vec![2.0, 3.0, 4.0, 5.0])
    );
    let d = parse_labeled_csv("\u{feff}label,a\r\n1,2\r\n", p).unwrap();
    assert_eq!(d.len(), 1);
}

#[test]
fn idx_concatenated_gzip_members() {
    // `cat head.gz rest.gz`: a valid gzip file of two members.
    let (images, _) = good_pair();
    let mut two = gzip(&images[..10]);
    two.extend_from_slice(&gzip(&images[10..]));
    assert_eq!(
        parse_idx(&two, "two.gz".as_ref()).unwrap(),
        parse_idx(&images, "i".as_ref()).unwrap()
    );
}

#[test]
fn csv_matrix_reader() {
    let p: &Path = "x.csv".as_ref();
    let m = parse_matrix_csv::<f32>("0.5,1\n-2,3e-1\n", p).unwrap();
    assert_eq!((m.rows(), m.cols()), (2, 2));
    assert_eq!(m.as_slice(), &[0.5, 1.0, -2.0, 0.3]);
    // f64 keeps every digit of the text.
    let m = parse_matrix_csv::<f64>("0.1000000000000001\n", p).unwrap();
    assert_eq!(m.as_slice(), &[0.1000000000000001]);
    assert!(matches!(
        parse_matrix_csv::<f64>("  \n", p),
        Err(DataError::Empty { .. })
    ));
    assert!(matches!(
        parse_matrix_csv::<f64>("a,b\n1,2\n", p),
        Err(DataError::BadCell {
            line: 1,
            column: 1,
            ..
        })
    ));
    assert!(matches!(
        parse_matrix_csv::<f64>("1,2\n1\n", p),
        Err(DataError::Ragged { line: 2, .. })
    ));
}

#[test]
fn scaling_fit_apply_and_round_trip() {
    let train = Dataset::new(vec![1.0, 10.0, 3.0, 10.0, 5.0, 10.0], vec![0, 1, 0], 2).unwrap();
    // Standardize: feature 0 has mean 3, population std sqrt(8/3); feature 1 has std 0 -> 1.
    let s = ScalingKind::Standardize.fit(&train);
    let Scaling::Standardize { mean, std } = &s else {
        panic!("{s:?}")
    };
    assert_eq!(mean, &vec![3.0, 10.0]);
    assert_eq!(std, &vec![(8.0f64 / 3.0).sqrt() as f32, 1.0]);
    let mut t = train.clone();
    s.apply(&mut t).unwrap();
    let sd = (8.0f64 / 3.0).sqrt() as f32;
    assert_eq!(t.inputs, vec![-2.0 / sd, 0.0, 0.0, 0.0, 2.0 / sd, 0.0]);
    for scaling in [
        s.clone(),
        Scaling::Divide(255.0),
        Scaling::Divide(0.1),
        Scaling::None,
    ] {
        let text = scaling.to_string();
        assert_eq!(text.parse::<Scaling>().unwrap(), scaling, "{text}");
    }
    // Non-trivial floats survive the text form exactly.
    let odd = Scaling::Standardize {
        mean: vec![0.1, 1.0 / 3.0, -7.25e-12],
        std: vec![std::f32::consts::PI, 1e30, 3.0e-7],
    };
    assert_eq!(odd.to_string().parse::<Scaling>().unwrap(), odd);
    assert_eq!(ScalingKind::Auto.fit(&train), Scaling::Divide(10.0));
    assert_eq!(ScalingKind::None.fit(&train), Scaling::None);
    let mut wrong = Dataset::new(vec![1.0; 3], vec![0], 3).unwrap();
    assert!(matches!(
        s.apply(&mut wrong),
        Err(DataError::FeatureMismatch { .. })
    ));
    for bad in [
        "",
        "divide:0",
        "divide:x",
        "standardize:1,2;1",
        "standardize:1;0",
        "scale:2",
    ] {
        assert!(bad.parse::<Scaling>().is_err(), "{bad}");
    }
}

#[test]
fn one_hot_inputs_subset_and_split() {
    let d = Dataset::new(vec![0.0, 1.0, 2.0, 3.0, 4.0], vec![1, 0, 2, 1, 0], 1).unwrap();
    let mut y = vec![0.0f64; 6];
    d.one_hot(&[2, 1], &mut y).unwrap();
    assert_eq!(y, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert!(matches!(
        d.one_hot(&[2, 1], &mut [0.0f64; 5]),
        Err(DataError::BufferSize {
            expected: 6,
            found: 5
        })
    ));
    let mut x = [0.0f32; 2];
    d.inputs_into(&[4, 0], &mut x).unwrap();
    assert_eq!(x, [4.0, 0.0]);
    let sub = d.subset(&[3, 3]);
    assert_eq!((sub.labels.clone(), sub.classes), (vec![1, 1], 3));
    assert!(d.stratified_split(1.0, 0).is_err());
    assert!(d.stratified_split(-0.1, 0).is_err());
    let s0 = d.stratified_split(0.0, 0).unwrap();
    assert_eq!((s0.train.len(), s0.test.len()), (5, 0));
    // Different seeds give different (but each reproducible) splits.
    let big = synthetic::moons(400, 5);
    let a = big.stratified_split(0.25, 1).unwrap();
    let b = big.stratified_split(0.25, 2).unwrap();
    assert_ne!(a.test, b.test);
    assert_eq!(a.test.class_counts(), vec![50, 50]);
    assert!(Dataset::new(vec![0.0; 3], vec![0], 2).is_err());
    assert!(Dataset::new(vec![], vec![], 0).is_err());
}

#[test]
fn synthetic_sets_are_seeded() {
    for (name, make) in [
        ("xor", synthetic::xor as fn(usize, u64) -> Dataset),
        ("spirals", synthetic::spirals),
        ("moons", synthetic::moons),
    ] {
        let a = make(300, 11);
        assert_eq!(a, make(300, 11), "{name}");
        assert_ne!(a, make(300, 12), "{name}");
        assert_eq!((a.len(), a.features, a.classes), (300, 2, 2), "{name}");
        assert!(
            a.inputs.iter().all(|x| x.is_finite() && x.abs() < 3.0),
            "{name}"
        );
        let s = DataSource::parse(&format!("{name}:300"), None)
            .unwrap()
            .load(0.2, 11)
            .unwrap();
        assert_eq!(s.train.len() + s.test.len(), 300);
    }
    // Moons: class 0 lies mostly above class 1.
    let m = synthetic::moons(1000, 0);
    let mean_y = |c: u32| {
        let ys: Vec<f32> = (0..m.len())
            .filter(|&i| m.labels[i] == c)
            .map(|i| m.input(i)[1])
            .collect();
        ys.iter().sum::<f32>() / ys.len() as f32
    };
    assert!(mean_y(0) > mean_y(1) + 0.5);
}
