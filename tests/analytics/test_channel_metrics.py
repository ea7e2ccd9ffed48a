"""Analytics' per-channel metric: each PSU's average of the last analysed run, labelled by channel."""

from __future__ import annotations

from mlpower.analytics.metrics import AnalyticsMetrics
from mlpower.schema import ChannelSummary, RunSummary


def summary(total: float | None, **channels: float) -> RunSummary:
    return RunSummary(run_id="r1", source="s", method="m", avg_power_w=total,
                      channels=tuple(ChannelSummary(name=n, source="wt310e", avg_power_w=w)
                                     for n, w in channels.items()))


def test_each_channel_and_the_total_are_shown_and_stale_channels_removed() -> None:
    metrics = AnalyticsMetrics()
    metrics.analyzed("sut1", summary(240.0, psu1=150.0, psu2=90.0))
    text = metrics.render().decode()
    for channel, watts in (("total", 240.0), ("psu1", 150.0), ("psu2", 90.0)):
        assert f'mlpower_analytics_channel_power_watts{{channel="{channel}",sut="sut1"}} {watts}' in text
    metrics.analyzed("sut1", summary(100.0))  # the next run of this SUT is measured on one analyzer
    text = metrics.render().decode()
    assert 'channel="psu1"' not in text and 'mlpower_analytics_channel_power_watts{channel="total",sut="sut1"} 100.0' \
        in text
    metrics.analyzed("sut1", summary(None))  # no window: nothing to show, not the old value
    assert "mlpower_analytics_channel_power_watts{" not in metrics.render().decode()
