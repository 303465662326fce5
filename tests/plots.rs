//! The pictures: what can be read back from their SVG text. Tick labels are whole epochs
//! ("5", not "5.0") and stay inside the picture, the curves keep off the axes, and the
//! confusion matrix has exactly k x k cells with k labels a side and readable counts.

use backprop::train::EpochReport;

/// The `<text>` elements of an SVG: (attributes, content).
fn texts(svg: &str) -> Vec<(String, String)> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let (attrs, rest) = t.split_once('>').unwrap();
            let content = rest.split("</text>").next().unwrap();
            (attrs.to_string(), content.trim().to_string())
        })
        .collect()
}

/// The value of attribute `name` in `attrs`.
fn attr<'a>(attrs: &'a str, name: &str) -> &'a str {
    let start = attrs
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {attrs}"))
        + name.len()
        + 3;
    &attrs[start..start + attrs[start..].find('"').unwrap()]
}

fn number(attrs: &str, name: &str) -> f64 {
    attr(attrs, name).parse().unwrap()
}

fn history(epochs: usize) -> Vec<EpochReport> {
    (1..=epochs)
        .map(|e| EpochReport {
            epoch: e,
            lr: 0.5,
            train_loss: 0.8 / e as f64,
            test_loss: 0.9 / e as f64,
            // From 69% up: the first point is the lowest, where the axis used to be.
            test_accuracy: 0.69 + 0.02 * e as f64,
            validation_loss: Some(0.85 / e as f64),
            validation_accuracy: Some(0.7 + 0.02 * e as f64),
            seconds: 0.1,
            epsilon: None,
        })
        .collect()
}

fn curves_svg(epochs: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.svg");
    backprop::plot::training_curves(&history(epochs), &path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn epoch_ticks_are_whole_numbers_inside_the_picture() {
    let svg = curves_svg(12);
    let t = texts(&svg);
    let contents: Vec<&str> = t.iter().map(|(_, c)| c.as_str()).collect();
    for bad in ["5.0", "10.0", "12.0", "100.0"] {
        assert!(!contents.contains(&bad), "tick {bad} in {contents:?}");
    }
    // Epoch ticks: both panels label epochs; each panel must show the last epoch, 12,
    // and 0 and 13 (the free epoch either side) are unlabelled.
    let twelves: Vec<&(String, String)> = t.iter().filter(|(_, c)| c == "12").collect();
    assert_eq!(twelves.len(), 2, "{contents:?}");
    for (attrs, content) in twelves {
        let x = number(attrs, "x");
        let size: f64 = attr(attrs, "font-size").parse().unwrap();
        // Centred text of a monospace font: half its width is 0.3 em a character.
        let right = x + 0.3 * size * content.len() as f64;
        let panel_end = if x < 500.0 { 500.0 } else { 1000.0 };
        assert!(
            right < panel_end,
            "tick 12 ends at {right}, past {panel_end}"
        );
    }
    assert!(!contents.contains(&"13"));
    // Percent ticks are whole numbers too, and none above 100.
    assert!(
        contents.contains(&"100") || contents.contains(&"95"),
        "{contents:?}"
    );
    assert!(!contents
        .iter()
        .any(|c| c.parse::<f64>().is_ok_and(|v| v > 100.0)));
}

#[test]
fn a_short_run_has_only_its_epochs_as_ticks() {
    let svg = curves_svg(3);
    let t = texts(&svg);
    let epochs: Vec<&str> = t
        .iter()
        .map(|(_, c)| c.as_str())
        .filter(|c| ["0", "1", "2", "3", "4"].contains(c))
        .collect();
    // 1, 2 and 3 on each panel (the loss axis labels 0 as well, and only 0).
    for e in ["1", "2", "3"] {
        assert_eq!(epochs.iter().filter(|&&c| c == e).count(), 2, "{epochs:?}");
    }
    assert!(!epochs.contains(&"4"));
    assert!(epochs.iter().filter(|&&c| c == "0").count() <= 1);
}

/// The points of every `<polyline>` of a given stroke colour.
fn polylines(svg: &str, stroke: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .filter(|p| {
            p.split('>')
                .next()
                .unwrap()
                .contains(&format!("stroke=\"{stroke}\""))
        })
        .map(|p| {
            attr(p.split('>').next().unwrap(), "points")
                .split_whitespace()
                .map(|xy| {
                    let (x, y) = xy.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_curves_keep_off_the_axes() {
    let svg = curves_svg(12);
    // The accuracy panel's test curve: red, the one right of x = 500.
    let red = polylines(&svg, "#FF0000");
    let acc = red
        .iter()
        .find(|p| p.len() == 12 && p[0].0 > 500.0)
        .expect("the test accuracy line");
    // The axes are the left and bottom ends of the panel's mesh lines, drawn in the grey
    // of plotters' mesh: the first point must lie strictly inside them.
    let grey: Vec<(f64, f64)> = svg
        .split("<line")
        .skip(1)
        .flat_map(|l| {
            let a = l.split('>').next().unwrap();
            [
                (number(a, "x1"), number(a, "y1")),
                (number(a, "x2"), number(a, "y2")),
            ]
        })
        .filter(|&(x, _)| x > 500.0)
        .collect();
    let (left, bottom) = grey.iter().fold((f64::INFINITY, 0f64), |(l, b), &(x, y)| {
        (l.min(x), b.max(y))
    });
    let (x0, y0) = acc[0];
    assert!(x0 > left + 5.0, "first point x {x0}, axis at {left}");
    assert!(y0 < bottom - 5.0, "first point y {y0}, axis at {bottom}");
}

fn confusion_svg(confusion: &[Vec<usize>]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.svg");
    backprop::plot::confusion_matrix(confusion, &path).unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_confusion_matrix_has_k_by_k_cells_and_k_labels_a_side() {
    // Counts from 3 up, so that the labels 0, 1, 2 are the only texts with those values.
    let m = vec![vec![50, 3, 4], vec![5, 40, 6], vec![7, 8, 30]];
    let svg = confusion_svg(&m);
    // One rectangle for the background, one per cell.
    assert_eq!(svg.matches("<rect").count(), 1 + 9);
    let t = texts(&svg);
    let count = |s: &str| t.iter().filter(|(_, c)| c == s).count();
    for label in ["0", "1", "2"] {
        assert_eq!(count(label), 2, "label {label}");
    }
    for n in [50, 3, 4, 5, 40, 6, 7, 8, 30] {
        assert_eq!(count(&n.to_string()), 1, "count {n}");
    }
    // No label for a class 3 that does not exist: "3" is the count only (checked above).
    // The cells tile a 3 x 3 square with no empty row above or column beside it (a
    // chart's discrete axes used to make room for a class k): the space between the
    // caption and the first row, and right of the last column, is under half a cell.
    let rects: Vec<[f64; 4]> = svg
        .split("<rect")
        .skip(1)
        .map(|r| {
            let a = r.split('>').next().unwrap();
            ["x", "y", "width", "height"].map(|n| number(a, n))
        })
        .collect();
    let (background, cells) = rects.split_first().unwrap();
    let side = cells[0][2];
    assert!(
        cells.iter().all(|c| c[2] == side && c[3] == side),
        "{cells:?}"
    );
    let mut xs: Vec<f64> = cells.iter().map(|c| c[0]).collect();
    let mut ys: Vec<f64> = cells.iter().map(|c| c[1]).collect();
    for v in [&mut xs, &mut ys] {
        v.sort_by(f64::total_cmp);
        v.dedup();
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v.windows(2).all(|w| w[1] - w[0] == side), "{v:?}");
    }
    let caption = t
        .iter()
        .find(|(_, c)| c.starts_with("confusion matrix"))
        .unwrap();
    assert!(
        ys[0] - number(&caption.0, "y") < side / 2.0,
        "an empty row above the cells"
    );
    assert!(
        background[2] - (xs[2] + side) < side / 2.0,
        "an empty column right of the cells"
    );

    let svg = confusion_svg(&vec![vec![1; 10]; 10]);
    assert_eq!(svg.matches("<rect").count(), 1 + 100);
}

#[test]
fn counts_are_white_on_dark_cells_and_black_on_light_ones() {
    let svg = confusion_svg(&[vec![50, 3], vec![20, 40]]);
    let t = texts(&svg);
    let fill = |s: &str| {
        let (a, _) = t.iter().find(|(_, c)| c == s).unwrap();
        attr(a, "fill").to_string()
    };
    // 50 and 40 are the darkest cells; 3 and 20 (shade 0.4) light ones.
    assert_eq!(fill("50"), "#FFFFFF");
    assert_eq!(fill("40"), "#FFFFFF");
    assert_eq!(fill("3"), "#000000");
    assert_eq!(fill("20"), "#000000");
}
