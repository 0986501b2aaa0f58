//! A network as a sequence of layers: linear and convolution layers (the trainable ones, each
//! but the last followed by a hidden layer of the run's method), pooling and flatten. A hidden
//! layer acts on *units*: a neuron of a linear layer, a channel of a convolution (all of a
//! channel's positions share its function and parameters).
//!
//! Feature maps are channels-last, `[positions..., channels]` per example, so that a
//! convolution is a linear layer over unfolded windows (`[examples x positions, kernel x
//! channels]`, see `run/conv.rs`) and a per-channel activation is the per-neuron one over
//! rows of `examples x positions`. An MLP is `flatten, linear, ..., linear`; its bits are those
//! of the MLP before this module. Flattening keeps that order too (position-major), so a conv
//! net's last linear layer sees the features in another order than PyTorch's channels-first
//! flatten: a fixed permutation of its inputs, the same function class and initialisation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The classes every data set here has (digits, clothes, signals): the last layer's outputs.
pub const CLASSES: usize = 10;

/// The named architectures with convolutions (MLPs are reference ids or explicit widths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NetName {
    /// The `mnist1d` package's CNN (`notebooks/models.py`, ConvBase): 1-D convolutions of 25
    /// channels, kernel 5 stride 2, then kernel 3 stride 2 twice (padding 1), linear 125 -> 10.
    Mnist1dCnn,
    /// A deeper 1-D net for depth questions: five convolutions of 32 channels (kernel 5, then
    /// 3; strides 1, 2, 1, 2, 2), linear 160 -> 10.
    Mnist1dCnn5,
    /// LeNet-5-like, for 28x28x1 and 32x32x3 images: conv 6 (5x5), max pool 2, conv 16 (5x5),
    /// max pool 2, linear 120, 84, 10 (activations after both convolutions and both hidden
    /// linear layers, as PAU's LeNet).
    Lenet5,
    /// A deeper 2-D net: conv 32 (3x3, padding 1), max pool 2, conv 32, max pool 2, conv 64,
    /// conv 64, linear -> 10.
    Conv4,
}

impl NetName {
    pub const ALL: [NetName; 4] = [
        NetName::Mnist1dCnn,
        NetName::Mnist1dCnn5,
        NetName::Lenet5,
        NetName::Conv4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NetName::Mnist1dCnn => "mnist1d-cnn",
            NetName::Mnist1dCnn5 => "mnist1d-cnn5",
            NetName::Lenet5 => "lenet5",
            NetName::Conv4 => "conv4",
        }
    }

    /// The spatial dimensions of the inputs it is made for: 1 (signals) or 2 (images).
    pub fn dims(self) -> usize {
        match self {
            NetName::Mnist1dCnn | NetName::Mnist1dCnn5 => 1,
            NetName::Lenet5 | NetName::Conv4 => 2,
        }
    }

    /// The net's name as results.csv writes it, or `None`.
    pub fn from_name(name: &str) -> Option<NetName> {
        NetName::ALL.into_iter().find(|n| n.name() == name)
    }

    /// Its layers.
    pub fn layers(self) -> Vec<LayerSpec> {
        use LayerSpec::{Conv, Flatten, Linear, MaxPool};
        let conv = |out, kernel, stride, padding| Conv {
            out,
            kernel,
            stride,
            padding,
        };
        let pool = MaxPool {
            kernel: 2,
            stride: 2,
        };
        let head = [Flatten, Linear { out: CLASSES }];
        match self {
            NetName::Mnist1dCnn => vec![conv(25, 5, 2, 1), conv(25, 3, 2, 1), conv(25, 3, 2, 1)],
            NetName::Mnist1dCnn5 => vec![
                conv(32, 5, 1, 2),
                conv(32, 3, 2, 1),
                conv(32, 3, 1, 1),
                conv(32, 3, 2, 1),
                conv(32, 3, 2, 1),
            ],
            NetName::Lenet5 => {
                return vec![
                    conv(6, 5, 1, 0),
                    pool,
                    conv(16, 5, 1, 0),
                    pool,
                    Flatten,
                    Linear { out: 120 },
                    Linear { out: 84 },
                    Linear { out: CLASSES },
                ]
            }
            NetName::Conv4 => vec![
                conv(32, 3, 1, 1),
                pool,
                conv(32, 3, 1, 1),
                pool,
                conv(64, 3, 1, 1),
                conv(64, 3, 1, 1),
            ],
        }
        .into_iter()
        .chain(head)
        .collect()
    }
}

impl fmt::Display for NetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One layer as written. Convolutions and pooling act over every spatial dimension of their
/// input (1-D signals, 2-D images) with one kernel size, stride and padding for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    Linear {
        out: usize,
    },
    Conv {
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    Flatten,
}

impl LayerSpec {
    pub fn is_trainable(&self) -> bool {
        matches!(self, LayerSpec::Linear { .. } | LayerSpec::Conv { .. })
    }
}

/// The layers of an MLP of hidden `widths`: flatten, then linear layers to the ten classes.
pub fn mlp(widths: &[usize]) -> Vec<LayerSpec> {
    std::iter::once(LayerSpec::Flatten)
        .chain(
            widths
                .iter()
                .chain(std::iter::once(&CLASSES))
                .map(|&out| LayerSpec::Linear { out }),
        )
        .collect()
}

/// One example's feature map: its spatial sizes (none once flat) and its channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub spatial: Vec<usize>,
    pub channels: usize,
}

impl Shape {
    pub fn flat(features: usize) -> Shape {
        Shape {
            spatial: Vec::new(),
            channels: features,
        }
    }

    pub fn positions(&self) -> usize {
        self.spatial.iter().product()
    }

    pub fn features(&self) -> usize {
        self.positions() * self.channels
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.spatial {
            write!(f, "{s}x")?;
        }
        write!(f, "{}", self.channels)
    }
}

/// A layer with its shapes resolved for one input.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub spec: LayerSpec,
    pub input: Shape,
    pub output: Shape,
}

impl Planned {
    /// The units of a trainable layer's output (its hidden layer's width): neurons or channels.
    pub fn units(&self) -> usize {
        self.output.channels
    }

    /// Rows per example of a trainable layer's product: its output positions (1 when flat).
    pub fn rows_per_example(&self) -> usize {
        self.output.positions()
    }

    /// A trainable layer's weight: `[out, in]` or `[out, kernel^d x in channels]`.
    pub fn weight_dims(&self) -> Option<(usize, usize)> {
        match self.spec {
            LayerSpec::Linear { out } => Some((out, self.input.features())),
            LayerSpec::Conv { out, kernel, .. } => Some((
                out,
                kernel.pow(self.input.spatial.len() as u32) * self.input.channels,
            )),
            _ => None,
        }
    }
}

/// The output size of a window `kernel` sliding with `stride` over `size` padded by `padding`.
fn slide(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = size + 2 * padding;
    (kernel >= 1 && stride >= 1 && padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

/// The layers' shapes for an input of `input`, checked: every kernel fits its padded input,
/// every pooling window tiles its input, linear layers see flat features, the net ends in a
/// linear layer to the ten classes. Errors name the layer (1-based) and what is wrong.
pub fn plan(layers: &[LayerSpec], input: &Shape) -> Result<Vec<Planned>, String> {
    let mut shape = input.clone();
    let mut planned = Vec::with_capacity(layers.len());
    for (i, &spec) in layers.iter().enumerate() {
        let at = |what: String| format!("layer {} ({spec:?}) on input {shape}: {what}", i + 1);
        let output = match spec {
            LayerSpec::Linear { out } => {
                if !shape.spatial.is_empty() {
                    return Err(at(
                        "a linear layer needs flat features (a flatten first)".into()
                    ));
                }
                Shape::flat(out)
            }
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
            } => {
                if shape.spatial.is_empty() {
                    return Err(at("a convolution needs spatial input".into()));
                }
                let spatial = shape
                    .spatial
                    .iter()
                    .map(|&n| slide(n, kernel, stride, padding))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        at(format!(
                            "kernel {kernel} (stride {stride}) is larger than its padded input"
                        ))
                    })?;
                Shape {
                    spatial,
                    channels: out,
                }
            }
            LayerSpec::MaxPool { kernel, stride } | LayerSpec::AvgPool { kernel, stride } => {
                if shape.spatial.is_empty() {
                    return Err(at("pooling needs spatial input".into()));
                }
                let mut spatial = Vec::new();
                for &n in &shape.spatial {
                    match slide(n, kernel, stride, 0) {
                        Some(o) if (n - kernel) % stride == 0 => spatial.push(o),
                        Some(_) => {
                            return Err(at(format!(
                                "a window of {kernel} with stride {stride} does not tile {n} \
                                 (the last {} would be left out)",
                                (n - kernel) % stride
                            )))
                        }
                        None => return Err(at(format!("a window of {kernel} is larger than {n}"))),
                    }
                }
                Shape {
                    spatial,
                    channels: shape.channels,
                }
            }
            LayerSpec::Flatten => Shape::flat(shape.features()),
        };
        planned.push(Planned {
            spec,
            input: shape.clone(),
            output: output.clone(),
        });
        shape = output;
    }
    match planned.last() {
        Some(p) if matches!(p.spec, LayerSpec::Linear { out } if out == CLASSES) => Ok(planned),
        _ => Err(format!(
            "the last layer must be a linear layer to the {CLASSES} classes"
        )),
    }
}

/// The units of each hidden layer (every trainable layer but the last).
pub fn hidden_units(plan: &[Planned]) -> Vec<usize> {
    let trainable: Vec<&Planned> = plan.iter().filter(|p| p.spec.is_trainable()).collect();
    trainable[..trainable.len() - 1]
        .iter()
        .map(|p| p.units())
        .collect()
}

/// The same from the layers alone (units do not depend on the input's shape).
pub fn hidden_units_of(layers: &[LayerSpec]) -> Vec<usize> {
    let units: Vec<usize> = layers
        .iter()
        .filter_map(|l| match *l {
            LayerSpec::Linear { out } | LayerSpec::Conv { out, .. } => Some(out),
            _ => None,
        })
        .collect();
    units[..units.len().saturating_sub(1)].to_vec()
}

/// Trainable scalars of the linear and convolution layers (weights and biases).
pub fn product_params(plan: &[Planned]) -> usize {
    plan.iter()
        .filter_map(|p| p.weight_dims())
        .map(|(out, fan_in)| out * (fan_in + 1))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(side: usize, channels: usize) -> Shape {
        Shape {
            spatial: vec![side, side],
            channels,
        }
    }

    #[test]
    fn named_nets_fit_their_inputs() {
        let signal = Shape {
            spatial: vec![40],
            channels: 1,
        };
        let p = plan(&NetName::Mnist1dCnn.layers(), &signal).unwrap();
        // ConvBase: 40 -> 19 -> 10 -> 5 positions, 25 channels, linear 125 -> 10.
        let sizes: Vec<String> = p.iter().map(|l| l.output.to_string()).collect();
        assert_eq!(sizes, ["19x25", "10x25", "5x25", "125", "10"]);
        assert_eq!(hidden_units(&p), [25, 25, 25]);
        assert_eq!(
            product_params(&p),
            (5 + 1) * 25 + (75 + 1) * 25 * 2 + 126 * 10
        );
        let p = plan(&NetName::Mnist1dCnn5.layers(), &signal).unwrap();
        assert_eq!(p.last().unwrap().input.features(), 160);
        let p = plan(&NetName::Lenet5.layers(), &image(28, 1)).unwrap();
        assert_eq!(p[4].output.features(), 256);
        assert_eq!(hidden_units(&p), [6, 16, 120, 84]);
        let p = plan(&NetName::Lenet5.layers(), &image(32, 3)).unwrap();
        assert_eq!(p[4].output.features(), 400);
        assert_eq!(p[0].weight_dims(), Some((6, 75)));
        let p = plan(&NetName::Conv4.layers(), &image(28, 1)).unwrap();
        assert_eq!(p.last().unwrap().input.features(), 7 * 7 * 64);
        // An MLP: flatten, then its widths.
        let p = plan(&mlp(&[32, 16]), &image(28, 1)).unwrap();
        assert_eq!(hidden_units(&p), [32, 16]);
        assert_eq!(product_params(&p), 785 * 32 + 33 * 16 + 17 * 10);
        for n in NetName::ALL {
            assert_eq!(NetName::from_name(n.name()), Some(n));
        }
    }

    #[test]
    fn bad_layers_are_named() {
        let signal = Shape {
            spatial: vec![40],
            channels: 1,
        };
        let cases: [(Vec<LayerSpec>, &Shape, &str); 6] = [
            (
                NetName::Lenet5.layers(),
                &Shape::flat(40),
                "a convolution needs spatial input",
            ),
            (
                NetName::Conv4.layers(),
                &Shape {
                    spatial: vec![2, 2],
                    channels: 1,
                },
                "layer 4",
            ),
            (
                vec![
                    LayerSpec::Conv {
                        out: 4,
                        kernel: 50,
                        stride: 1,
                        padding: 2,
                    },
                    LayerSpec::Flatten,
                    LayerSpec::Linear { out: 10 },
                ],
                &signal,
                "kernel 50 (stride 1) is larger than its padded input",
            ),
            (
                vec![
                    LayerSpec::MaxPool {
                        kernel: 3,
                        stride: 3,
                    },
                    LayerSpec::Flatten,
                    LayerSpec::Linear { out: 10 },
                ],
                &signal,
                "does not tile 40",
            ),
            (
                vec![LayerSpec::Linear { out: 10 }],
                &signal,
                "needs flat features",
            ),
            (
                vec![LayerSpec::Flatten, LayerSpec::Linear { out: 7 }],
                &signal,
                "the last layer must be a linear layer to the 10 classes",
            ),
        ];
        for (layers, input, needle) in cases {
            let err = plan(&layers, input).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
