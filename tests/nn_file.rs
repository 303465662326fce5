//! Model files of layers: round trips in both precisions, and every refusal naming the key.

use backprop::data::text::Vocab;
use backprop::model_file::{save_named, ModelFileError};
use backprop::network::Cost;
use backprop::nn::{load, AnyArchModel, Arch, ArchModel};

const CNN: &str =
    "Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(18, 3), Softmax(dim=-1)";

fn arch(s: &str) -> Arch {
    s.parse().unwrap()
}

#[test]
fn an_f64_model_comes_back_f64_with_the_same_values_and_metadata() {
    let m = ArchModel::<f64>::new(&arch(CNN), &[1, 8, 8], Cost::LogLikelihood, None, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    m.save(&path, &[("epochs".into(), "2".into())]).unwrap();
    let (loaded, meta) = load(&path).unwrap();
    assert_eq!(meta["cost"], "log-likelihood");
    assert_eq!(meta["epochs"], "2");
    assert_eq!(meta["arch"], arch(CNN).to_string());
    let AnyArchModel::F64(l) = loaded else {
        panic!("an f64 file loads as f64")
    };
    assert_eq!(l.input_shape, [1, 8, 8]);
    for ((n1, s1, v1), (n2, s2, v2)) in m.net.params().zip(l.net.params()) {
        assert_eq!((n1, s1), (n2, s2));
        assert_eq!(v1, v2);
    }
}

#[test]
fn a_character_model_keeps_its_vocabulary() {
    let vocab = Vocab::of("hello world");
    let a = arch(&format!(
        "Embedding({}, 4), LSTM(4, 5), Linear(5, {}), Softmax(dim=-1)",
        vocab.len(),
        vocab.len()
    ));
    let m = ArchModel::<f32>::new(&a, &[7], Cost::LogLikelihood, Some(vocab.clone()), 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    m.save(&path, &[]).unwrap();
    let (AnyArchModel::F32(l), _) = load(&path).unwrap() else {
        panic!("f32")
    };
    assert_eq!(l.vocab.unwrap().chars(), vocab.chars());
}

fn refusal(meta: &[(&str, &str)], arch_s: &str) -> String {
    let m = ArchModel::<f32>::new(&arch(arch_s), &[1, 8, 8], Cost::Quadratic, None, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let meta: Vec<(String, String)> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    save_named(&m.net, &path, &meta).unwrap();
    let e: ModelFileError = load(&path).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("bad.safetensors"), "{text}");
    text
}

#[test]
fn files_that_make_no_model_are_refused_naming_the_key() {
    let e = refusal(&[("input_shape", "1,8,8"), ("cost", "quadratic")], CNN);
    assert!(e.contains("metadata arch: missing"), "{e}");
    let e = refusal(&[("arch", CNN), ("cost", "quadratic")], CNN);
    assert!(e.contains("metadata input_shape: missing"), "{e}");
    let e = refusal(
        &[
            ("arch", CNN),
            ("input_shape", "1,8,0"),
            ("cost", "quadratic"),
        ],
        CNN,
    );
    assert!(
        e.contains("metadata input_shape") && e.contains("\"0\""),
        "{e}"
    );
    let e = refusal(
        &[("arch", CNN), ("input_shape", "1,8,8"), ("cost", "hinge")],
        CNN,
    );
    assert!(e.contains("metadata cost") && e.contains("hinge"), "{e}");
    let e = refusal(
        &[
            ("arch", "Conv2d(1, 2, 3"),
            ("input_shape", "1,8,8"),
            ("cost", "quadratic"),
        ],
        CNN,
    );
    assert!(e.contains("metadata arch"), "{e}");
    // Layers that do not fit the input shape: 1x6x6 gives 2x2x2 = 8 values, not 18.
    let e = refusal(
        &[
            ("arch", CNN),
            ("input_shape", "1,6,6"),
            ("cost", "quadratic"),
        ],
        CNN,
    );
    assert!(
        e.contains("metadata arch") && e.contains("Linear(18, 3)"),
        "{e}"
    );
    // The log-likelihood needs a final softmax: refused at load as at construction.
    let plain = "Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(18, 3)";
    let e = refusal(
        &[
            ("arch", plain),
            ("input_shape", "1,8,8"),
            ("cost", "log-likelihood"),
        ],
        plain,
    );
    assert!(e.contains("Softmax(dim=-1)"), "{e}");
    // Tensors of another model.
    let other = "Conv2d(1, 4, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(36, 3), Softmax(dim=-1)";
    let e = refusal(
        &[
            ("arch", other),
            ("input_shape", "1,8,8"),
            ("cost", "quadratic"),
        ],
        CNN,
    );
    assert!(e.contains("0.weight") && e.contains("shape"), "{e}");
}

#[test]
fn a_vocabulary_that_does_not_match_the_embedding_is_refused() {
    let a = "Embedding(3, 4), LSTM(4, 5), Linear(5, 3), Softmax(dim=-1)";
    let m = ArchModel::<f32>::new(&arch(a), &[7], Cost::LogLikelihood, None, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.safetensors");
    let meta = [
        ("arch", a),
        ("input_shape", "7"),
        ("cost", "log-likelihood"),
        ("vocab", "[\"a\",\"b\"]"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    save_named(&m.net, &path, &meta).unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.contains("metadata vocab: 2 characters for an Embedding of 3"),
        "{e}"
    );
}

#[test]
fn extra_metadata_cannot_overwrite_the_models_own() {
    let m = ArchModel::<f32>::new(&arch(CNN), &[1, 8, 8], Cost::Quadratic, None, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = m
        .save(
            &dir.path().join("x.safetensors"),
            &[("cost".into(), "quadratic".into())],
        )
        .unwrap_err();
    assert!(e.to_string().contains("metadata cost"), "{e}");
}
