//! `smartmixed bench`: the CSV columns other tools read, appended without overwriting.

mod common;

#[test]
fn bench_ops_appends_rows_with_the_agreed_columns() {
    let dir = common::temp_dir("bench");
    let csv_path = dir.join("nested/cpu.csv");
    for _ in 0..2 {
        let stdout = common::run_ok(&[
            "bench",
            "ops",
            "--shapes",
            "8x12,4x6",
            "--repeats",
            "2",
            "--csv",
            csv_path.to_str().unwrap(),
        ]);
        assert!(stdout.contains("faster than grouped"), "{stdout}");
    }
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        "bench,impl,pass,rows,cols,dtype,device,threads,p20_us,p50_us,p80_us,gbps,git,timestamp"
            .split(',')
            .collect::<Vec<_>>()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    // 2 shapes x (24 impls x 2 passes + copy) x 2 invocations, one header. The impls: fused,
    // fused-all, fused-{gelu,silu,mish,softplus}, uniform-{relu,elu,tanh,gelu,silu}, grouped,
    // masked, mixture-fused, mixture-naive, mixture-fused-all, and {prelu, swish_beta, pau,
    // pau_neuron}-{fused,candle}.
    assert_eq!(rows.len(), 2 * 49 * 2);
    for r in &rows {
        assert_eq!(&r[0], "ops");
        let (p20, p50, p80): (f64, f64, f64) = (
            r[8].parse().unwrap(),
            r[9].parse().unwrap(),
            r[10].parse().unwrap(),
        );
        assert!(0.0 < p20 && p20 <= p50 && p50 <= p80, "{r:?}");
    }
    assert!(rows
        .iter()
        .any(|r| &r[1] == "mixture-fused" && &r[2] == "fwd_bwd"));
    assert!(rows
        .iter()
        .any(|r| &r[1] == "pau_neuron-fused" && &r[2] == "fwd_bwd"));

    let output = common::run(&["bench", "ops", "--shapes", "8by12"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--shapes"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_train_times_each_step_and_the_forward_pass_of_the_network_a_run_leaves() {
    let dir = common::temp_dir("bench-train");
    let csv_path = dir.join("train.csv");
    let stdout = common::run_ok(&[
        "bench",
        "train",
        "--arch",
        "4",
        "--batches",
        "2",
        "--threads",
        "1",
        "--method",
        "prelu,softmix_freeze",
        "--csv",
        csv_path.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("inference (forward) / relu: phase2 "),
        "{stdout}"
    );
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let rows: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].to_string(), r[2].to_string())
        })
        .collect();
    let row = |name: &str, pass: &str| (name.to_string(), pass.to_string());
    let expected = [
        row("relu", "step"),
        row("phase1", "step"),
        row("phase2", "step"),
        row("matmul-floor", "step"),
        row("relu", "infer"),
        row("phase2", "infer"),
        row("matmul-floor", "infer"),
        row("prelu", "step"),
        row("prelu", "infer"),
        // Its network at inference is phase 2's kind: no row of its own.
        row("softmix_freeze", "step"),
    ];
    assert_eq!(rows, expected);
    std::fs::remove_dir_all(dir).unwrap();
}
