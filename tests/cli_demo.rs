//! `backprop demo`: the post's Figure 1 walk-through, and its JSON.

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_backprop"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run backprop demo");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn walk_through_has_the_seeds_numbers() {
    let out = demo(&[]);
    for line in [
        "  c = 5",
        "  d = 6",
        "  o = 15",
        "  from a: do/da = 10.5   (5 multiply-adds)",
        "  from b: do/db = 8   (5 multiply-adds)",
        "  from c: do/dc = 3   (2 multiply-adds)",
        "  from d: do/dd = 2.5   (1 multiply-add)",
        "  total: 13 multiply-adds",
        "  do/da = 10.5\n  do/db = 8\n  do/dc = 3\n  do/dd = 2.5\n  total: 7 multiply-adds",
        "  do/da = 10.5 over 2 paths\n",
        "    a -> c -> (0.5*c) -> o: 1 * 0.5 * 6 = 3\n",
        "    a -> d -> o: 3 * 2.5 = 7.5\n",
        "    b -> d -> o: 2 * 2.5 = 5\n",
        "  do/dd = 2.5 over 1 path\n    d -> o: 2.5 = 2.5\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn json_has_the_keys_of_diff() {
    let v: serde_json::Value = serde_json::from_str(&demo(&["--json"])).unwrap();
    assert_eq!(v["output"], "o");
    assert_eq!(v["value"], 15.0);
    assert_eq!(v["values"]["c"], 5.0);
    assert_eq!(v["values"]["d"], 6.0);
    for mode in ["forward", "reverse"] {
        let g = &v[mode]["gradient"];
        assert_eq!([&g["a"], &g["b"], &g["c"], &g["d"]], [10.5, 8.0, 3.0, 2.5]);
    }
    assert!(v["forward"]["work"].as_u64() > v["reverse"]["work"].as_u64());
}
