//! The library's trained-model type: the same files as the command line, the stored scaling
//! applied, either precision behind one type, and bad rows refused.

use backprop::data::{digits, Scaling};
use backprop::network::{Activation, Cost, Init, Network};
use backprop::{Classifier, Error};
use std::process::Command;

#[test]
fn a_model_from_train_predicts_as_the_predict_command_does() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["train", "--epochs", "3", "--out", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = Classifier::load(&model).unwrap();
    assert_eq!((c.inputs(), c.classes()), (64, 10));
    // The digits' pixels run 0..16; the model divides by the largest training pixel.
    assert_eq!(c.scaling(), &Scaling::Divide(16.0));
    let test = digits::split().test;
    let rows = &test.inputs[..20 * 64];
    let csv: String = rows
        .chunks(64)
        .map(|r| {
            r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    let x = dir.path().join("x.csv");
    std::fs::write(&x, csv).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .args(["predict", "--model", model.to_str().unwrap()])
        .args(["--inputs", x.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let cli: Vec<usize> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(c.predict(rows).unwrap(), cli);
    // Most of them right after 3 epochs (the floor is far below what training reaches).
    let right = cli
        .iter()
        .zip(&test.labels)
        .filter(|(p, &y)| **p == y as usize)
        .count();
    assert!(right >= 15, "{right} of 20");
}

#[test]
fn f64_networks_scaling_and_refusals() {
    let net = Network::<f64>::new(
        &[2, 3, 2],
        &[Activation::Tanh, Activation::Softmax],
        Cost::LogLikelihood,
        Init::Scaled,
        3,
    )
    .unwrap();
    let scaled = Classifier::new(net.clone(), Scaling::Divide(10.0));
    let plain = Classifier::new(net, Scaling::None);
    // Dividing by 10 first is the same as giving the network a tenth of the input.
    let a = scaled.predict_proba(&[5.0, -3.0]).unwrap();
    let b = plain.predict_proba(&[0.5, -0.3]).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-7, "{a:?} vs {b:?}");
    }
    assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f64.safetensors");
    scaled
        .save(&path, &[("note".into(), "kept".into())])
        .unwrap();
    let back = Classifier::load(&path).unwrap();
    assert_eq!(back.network().dtype(), "F64");
    assert_eq!(back.metadata()["note"], "kept");
    assert_eq!(back.predict_proba(&[5.0, -3.0]).unwrap(), a);
    // Saving what was loaded keeps its metadata and does not trip over the network's keys.
    back.save(&path, &[]).unwrap();
    assert_eq!(Classifier::load(&path).unwrap().metadata()["note"], "kept");
    assert!(matches!(
        plain.predict(&[1.0, 2.0, 3.0]),
        Err(Error::Classifier(_))
    ));
    assert!(plain.predict(&[]).is_err());
    let e = plain.predict(&[1.0, 2.0, 3.0]).unwrap_err().to_string();
    assert!(
        e.contains("3 input values") && e.contains("rows of 2"),
        "{e}"
    );
}
