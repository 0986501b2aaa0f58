#!/usr/bin/env python3
"""Reads a TensorBoard log directory with TensorBoard's own readers and prints what they found,
as JSON, for `make test` to hold against what smartmixed wrote (tests/tensorboard.rs):

    python3 scripts/tensorboard-readback.py LOGDIR

Per run (its directory relative to LOGDIR, as TensorBoard names it): every scalar tag's
(step, value) pairs, read by EventAccumulator with no sampling (size_guidance 0: keep all), and
the hparams plugin's data: the session start's hyperparameters and group, the session end's
status; and the custom-scalars layout (category, chart title, tags per chart). Needs the `tensorboard` package (scripts/tensorboard-env.sh makes a virtual environment
with it).
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator, event_multiplexer
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.hparams import metadata, plugin_data_pb2
from tensorboard.util import tensor_util


def value_of(v):
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else None


def main():
    logdir = sys.argv[1]
    keep_all = {
        event_accumulator.SCALARS: 0,
        event_accumulator.TENSORS: 0,
        event_accumulator.COMPRESSED_HISTOGRAMS: 0,
        event_accumulator.HISTOGRAMS: 0,
        event_accumulator.IMAGES: 0,
        event_accumulator.AUDIO: 0,
    }
    mux = event_multiplexer.EventMultiplexer(size_guidance=keep_all)
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    runs = {}
    for run in sorted(mux.Runs()):
        acc = mux.GetAccumulator(run)
        scalars = {
            tag: [[e.step, e.value] for e in acc.Scalars(tag)]
            for tag in acc.Tags()[event_accumulator.SCALARS]
        }
        found = {"scalars": scalars}
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        for tag, raw in content.items():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            if tag == metadata.SESSION_START_INFO_TAG:
                start = data.session_start_info
                found["group"] = start.group_name
                found["hparams"] = {k: value_of(v) for k, v in start.hparams.items()}
            elif tag == metadata.SESSION_END_INFO_TAG:
                found["status"] = data.session_end_info.status
        if custom_scalar_metadata.CONFIG_SUMMARY_TAG in acc.Tags()[event_accumulator.TENSORS]:
            (event,) = acc.Tensors(custom_scalar_metadata.CONFIG_SUMMARY_TAG)
            layout = layout_pb2.Layout.FromString(
                tensor_util.make_ndarray(event.tensor_proto).item()
            )
            found["layout"] = [
                [category.title, chart.title, list(chart.multiline.tag)]
                for category in layout.category
                for chart in category.chart
            ]
        runs[run] = found
    json.dump({"runs": runs}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
