//! The `arch` string: PyTorch's constructor syntax, shapes followed through the layers,
//! parameters named and shaped as `nn.Sequential`'s `state_dict`, and every refusal with the
//! layer, the argument and the column.

use backprop::nn::{Arch, ArchError, Layer, ParamInit};

const LENET5: &str = "Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2), Conv2d(6, 16, 5), \
ReLU(), MaxPool2d(2), Flatten(), Linear(400, 120), ReLU(), Linear(120, 84), ReLU(), \
Linear(84, 10), Softmax(dim=-1)";

const CONVNET: &str = "Conv2d(1, 32, 3), ReLU(), Conv2d(32, 64, 3), ReLU(), MaxPool2d(2), \
Flatten(), Linear(9216, 128), ReLU(), Linear(128, 10), Softmax(dim=-1)";

fn parse(s: &str) -> Arch {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    match s.parse::<Arch>() {
        Ok(a) => panic!("{s} parsed as {a}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn lenet5_shapes_and_parameters_are_pytorchs() {
    let a = parse(LENET5);
    let shapes = a.shapes(&[1, 28, 28]).unwrap();
    let expected: Vec<Vec<usize>> = vec![
        vec![1, 28, 28],
        vec![6, 28, 28],
        vec![6, 28, 28],
        vec![6, 14, 14],
        vec![16, 10, 10],
        vec![16, 10, 10],
        vec![16, 5, 5],
        vec![400],
        vec![120],
        vec![120],
        vec![84],
        vec![84],
        vec![10],
        vec![10],
    ];
    assert_eq!(shapes, expected);
    let params: Vec<(String, Vec<usize>)> =
        a.params().into_iter().map(|p| (p.name, p.shape)).collect();
    let names = |v: &[(&str, &[usize])]| -> Vec<(String, Vec<usize>)> {
        v.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
    };
    assert_eq!(
        params,
        names(&[
            ("0.weight", &[6, 1, 5, 5]),
            ("0.bias", &[6]),
            ("3.weight", &[16, 6, 5, 5]),
            ("3.bias", &[16]),
            ("7.weight", &[120, 400]),
            ("7.bias", &[120]),
            ("9.weight", &[84, 120]),
            ("9.bias", &[84]),
            ("11.weight", &[10, 84]),
            ("11.bias", &[10]),
        ])
    );
    // 61,706 parameters, as LeNet-5 with these sizes has in PyTorch.
    let count: usize = a
        .params()
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    assert_eq!(count, 61_706);
    // PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 1*5*5 = 25.
    assert_eq!(a.params()[0].init, ParamInit::Uniform(0.2));
    assert_eq!(a.params()[1].init, ParamInit::Uniform(0.2));
    // The canonical string is the input, up to spacing.
    assert_eq!(a.to_string(), LENET5);
}

#[test]
fn convnet_has_9216_features_after_flatten() {
    let a = parse(CONVNET);
    let shapes = a.shapes(&[1, 28, 28]).unwrap();
    assert_eq!(shapes[5], vec![64, 12, 12]);
    assert_eq!(shapes[6], vec![9216]);
    let count: usize = a
        .params()
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    // 320 + 18,496 + 1,179,776 + 1,290: PyTorch's examples/mnist without dropout.
    assert_eq!(count, 1_199_882);
}

#[test]
fn char_lstm_parameters_follow_pytorchs_lstm_layout() {
    let a =
        parse("Embedding(65, 64), LSTM(64, 128, num_layers=2), Linear(128, 65), Softmax(dim=-1)");
    assert_eq!(
        a.shapes(&[50]).unwrap(),
        vec![
            vec![50],
            vec![50, 64],
            vec![50, 128],
            vec![50, 65],
            vec![50, 65]
        ]
    );
    let p = a.params();
    let got: Vec<(&str, Vec<usize>)> = p
        .iter()
        .map(|p| (p.name.as_str(), p.shape.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("0.weight", vec![65, 64]),
            ("1.weight_ih_l0", vec![512, 64]),
            ("1.weight_hh_l0", vec![512, 128]),
            ("1.bias_ih_l0", vec![512]),
            ("1.bias_hh_l0", vec![512]),
            ("1.weight_ih_l1", vec![512, 128]),
            ("1.weight_hh_l1", vec![512, 128]),
            ("1.bias_ih_l1", vec![512]),
            ("1.bias_hh_l1", vec![512]),
            ("2.weight", vec![65, 128]),
            ("2.bias", vec![65]),
        ]
    );
    assert_eq!(p[0].init, ParamInit::Normal);
    // nn.LSTM: U(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight and bias.
    let bound = 1.0 / 128f64.sqrt();
    assert!(p[1..9].iter().all(|q| q.init == ParamInit::Uniform(bound)));
    let rnn = parse("RNN(3, 5)");
    let names: Vec<String> = rnn.params().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "0.weight_ih_l0",
            "0.weight_hh_l0",
            "0.bias_ih_l0",
            "0.bias_hh_l0"
        ]
    );
    assert_eq!(rnn.params()[0].shape, vec![5, 3]);
}

#[test]
fn keyword_positional_tuples_and_defaults_as_pytorch_takes_them() {
    let a = parse(
        "Conv2d(in_channels=3, out_channels=8, kernel_size=(3, 5), stride=(2, 1), padding=1, bias=False), \
         MaxPool2d(kernel_size=2, stride=1), AvgPool2d((2, 2)), LeakyReLU(0.2), LeakyReLU(), \
         Dropout(), Dropout(p=0.25), Tanh(), Sigmoid(), ReLU(inplace=True), Flatten(1, -1)",
    );
    assert_eq!(
        a.layers()[0],
        Layer::Conv2d {
            in_channels: 3,
            out_channels: 8,
            kernel: (3, 5),
            stride: (2, 1),
            padding: (1, 1),
            bias: false
        }
    );
    assert_eq!(
        a.layers()[1],
        Layer::MaxPool2d {
            kernel: (2, 2),
            stride: (1, 1)
        }
    );
    assert_eq!(
        a.layers()[2],
        Layer::AvgPool2d {
            kernel: (2, 2),
            stride: (2, 2)
        }
    );
    assert_eq!(a.layers()[3], Layer::LeakyRelu { slope: 0.2 });
    assert_eq!(a.layers()[4], Layer::LeakyRelu { slope: 0.01 });
    assert_eq!(a.layers()[5], Layer::Dropout { p: 0.5 });
    assert_eq!(a.layers()[6], Layer::Dropout { p: 0.25 });
    assert!(a.params()[0].name == "0.weight" && a.params().len() == 1);
    // (3 + 2 - 3)/2 + 1 = 2 rows, (10 + 2 - 5)/1 + 1 = 8 columns; then pools 2/1 and 2/2.
    let first_two = Arch::new(a.layers()[..2].to_vec()).unwrap();
    let s = first_two.shapes(&[3, 3, 10]).unwrap();
    assert_eq!(s[1], vec![8, 2, 8]);
    assert_eq!(s[2], vec![8, 1, 7]);
    // A 1x7 image cannot hold a 2x2 window.
    let e = a.shapes(&[3, 3, 10]).unwrap_err().to_string();
    assert!(
        e.contains("layer 2 (AvgPool2d(2))") && e.contains("1x7"),
        "{e}"
    );
    // The canonical string parses back to the same layers.
    assert_eq!(parse(&a.to_string()), a);
}

#[test]
fn shapes_that_do_not_fit_name_the_layer_and_both_sizes() {
    let a = parse(&LENET5.replace("Linear(400, 120)", "Linear(399, 120)"));
    let e = a.shapes(&[1, 28, 28]).unwrap_err();
    assert_eq!(
        e,
        ArchError::Shape {
            index: 7,
            layer: "Linear(399, 120)".into(),
            expected: "399 values on its last axis".into(),
            given: "400 values".into()
        }
    );
    // LeNet-5 on the 8x8 digits: the second convolution finds a 4x4 image.
    let e = parse(LENET5).shapes(&[1, 8, 8]).unwrap_err().to_string();
    assert!(
        e.contains("layer 3") && e.contains("5x5") && e.contains("6x4x4"),
        "{e}"
    );
    // Channels.
    let e = parse("Conv2d(3, 4, 3)")
        .shapes(&[1, 8, 8])
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 channels") && e.contains("1x8x8"), "{e}");
    // An image layer on a vector, a recurrent layer on the wrong width, an embedding on vectors.
    assert!(parse("MaxPool2d(2)")
        .shapes(&[10])
        .unwrap_err()
        .to_string()
        .contains("C x H x W"));
    let e = parse("LSTM(4, 8)").shapes(&[5, 3]).unwrap_err().to_string();
    assert!(e.contains("T x 4") && e.contains("5x3"), "{e}");
    assert!(parse("Embedding(10, 4)").shapes(&[5, 3]).is_err());
    // Token ids are the model's input: an Embedding after another layer is refused, even
    // one that passes the ids through unchanged.
    let e = parse("Flatten(), Embedding(10, 4)")
        .shapes(&[5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 1") && e.contains("comes first"), "{e}");
}

#[test]
fn bad_strings_name_the_layer_the_argument_and_the_column() {
    let cases: &[(&str, &[&str])] = &[
        ("", &["no layers"]),
        (
            "Linear(4, 2),, ReLU()",
            &["layer 1", "column 14", "empty layer"],
        ),
        ("Linear(4)", &["layer 0", "missing argument 'out_features'"]),
        ("Linear(4, 2, 3, 4)", &["at most 3 arguments"]),
        (
            "ReLU(), Linear(4, 0)",
            &["layer 1", "out_features", "from 1 to", "column 19"],
        ),
        ("Linear(4, -2)", &["out_features"]),
        ("Linear(4, 2.5)", &["out_features", "2.5"]),
        (
            "Linear(4, 2, bais=False)",
            &["no argument 'bais'", "in_features, out_features, bias"],
        ),
        (
            "Linear(4, out_features=2, 3)",
            &["positional argument after a keyword"],
        ),
        ("Linear(4, 2, in_features=3)", &["given twice"]),
        ("Dense(4, 2)", &["unknown layer 'Dense'", "Linear, Conv2d"]),
        ("Linear 4, 2", &["layer 0", "constructor call"]),
        ("Linear(4, 2", &["expected ')'"]),
        (
            "Conv2d(1, 6, 5, dilation=2)",
            &["dilation=2 is not supported"],
        ),
        ("Conv2d(1, 6, 5, groups=2)", &["groups=2"]),
        ("Conv2d(1, 6, 0)", &["kernel_size must be at least 1"]),
        ("MaxPool2d(2, padding=1)", &["padding=1 is not supported"]),
        ("Softmax(dim=0)", &["dim=0", "last axis"]),
        ("LSTM(4, 8, bidirectional=True)", &["bidirectional=True"]),
        ("LSTM(4, 8, batch_first=False)", &["batch-first"]),
        ("RNN(4, 8, nonlinearity='relu')", &["'relu'", "tanh only"]),
        ("Dropout(1.0)", &["p must be in [0, 1)"]),
        ("Linear(4, 2, bias=yes)", &["'yes' is not a value"]),
        ("Linear(4, 2, bias=1)", &["bias must be True or False"]),
        ("Linear(99999999999, 2)", &["in_features"]),
    ];
    for (s, needles) in cases {
        let e = err(s);
        for n in *needles {
            assert!(e.contains(n), "{s:?}: {e:?} lacks {n:?}");
        }
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    // A long layer is quoted, not copied whole.
    let long = format!("Linear(4, {})", "9".repeat(5000));
    assert!(err(&long).len() < 300);
}
