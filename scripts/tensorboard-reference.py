#!/usr/bin/env python3
"""Writes the reference that `make test` holds the Rust TensorBoard writer to
(crates/experiments/tests/data/tensorboard-reference.json), from the `tensorboard` package's own
record writer and protos:

    python3 -m venv /tmp/tb && /tmp/tb/bin/pip install tensorboard==2.21.0
    /tmp/tb/bin/python scripts/tensorboard-reference.py > crates/experiments/tests/data/tensorboard-reference.json

It records the version it ran with; TFRecord's masked CRC-32C of a few byte strings; whole
framed records; serialized Event messages (the file-version event, a session-log START and
scalar summaries); and
the hparams plugin's session-start and session-end summaries (hparams in a map, whose order on
the wire is the package's own: compare them decoded); and a custom-scalars layout summary, built
as the plugin's `summary.pb` builds it (a string tensor holding the layout) without TensorFlow.
"""
import io
import json
import sys
from importlib.metadata import version

from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
from tensorboard.util import tensor_util
from tensorboard.summary.writer.record_writer import RecordWriter, masked_crc32c


def framed(payload):
    buf = io.BytesIO()
    RecordWriter(buf).write(payload)
    return buf.getvalue().hex()


def main():
    payloads = [b"", b"hello", bytes(32), bytes(range(256)), (1234).to_bytes(8, "little")]
    ref = {
        "versions": {"tensorboard": version("tensorboard"), "python": sys.version.split()[0]},
        "masked_crc32c": [[p.hex(), masked_crc32c(p)] for p in payloads],
        "records": [[p.hex(), framed(p)] for p in payloads],
    }
    events = [
        event_pb2.Event(wall_time=1765000000.25, file_version="brain.Event:2"),
        event_pb2.Event(
            wall_time=1765000000.25, step=0, session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        ),
        event_pb2.Event(
            wall_time=1.5,
            step=3,
            summary=summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag="loss/train", simple_value=0.25)]
            ),
        ),
        event_pb2.Event(
            wall_time=1765000012.75,
            step=200,
            summary=summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(tag="accuracy/val", simple_value=0.9125),
                    summary_pb2.Summary.Value(tag="epoch_seconds", simple_value=-3.0e-7),
                ]
            ),
        ),
    ]
    ref["events"] = [
        {
            "wall_time": e.wall_time,
            "step": e.step,
            "file_version": e.file_version,
            "session_log": e.session_log.status,
            "scalars": [[v.tag, v.simple_value] for v in e.summary.value],
            "bytes": e.SerializeToString().hex(),
        }
        for e in events
    ]
    hparams = {"lr": 0.001, "method": "smartmixed", "clip": True, "seed": 7}
    start = summary_v2.hparams_pb(hparams, trial_id="arch 3 smartmixed", start_time_secs=1765000000.5)
    end = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(
            status=api_pb2.STATUS_SUCCESS, end_time_secs=1765000100.25
        )
    )
    end = summary_v2._summary_pb(metadata.SESSION_END_INFO_TAG, end)
    ref["hparams"] = {
        "values": hparams,
        "group_name": "arch 3 smartmixed",
        "start_time_secs": 1765000000.5,
        "end_time_secs": 1765000100.25,
        "session_start": start.SerializeToString().hex(),
        "session_end": end.SerializeToString().hex(),
    }
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title="loss and accuracy",
                chart=[
                    layout_pb2.Chart(
                        title="loss",
                        multiline=layout_pb2.MultilineChartContent(tag=["^loss/train$", "^loss/val$"]),
                    )
                ],
            ),
            layout_pb2.Category(
                title="functions chosen per layer",
                chart=[
                    layout_pb2.Chart(
                        title="layer 1",
                        multiline=layout_pb2.MultilineChartContent(tag=["^share_layer1/"]),
                    )
                ],
            ),
        ]
    )
    custom = summary_pb2.Summary()
    custom.value.add(
        tag=custom_scalar_metadata.CONFIG_SUMMARY_TAG,
        metadata=custom_scalar_metadata.create_summary_metadata(),
        tensor=tensor_util.make_tensor_proto(layout.SerializeToString(), dtype=types_pb2.DT_STRING),
    )
    ref["custom_scalars"] = {"layout": layout.SerializeToString().hex(), "summary": custom.SerializeToString().hex()}
    json.dump(ref, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
