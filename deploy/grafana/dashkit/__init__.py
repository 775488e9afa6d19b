"""Building blocks of the Grafana dashboards (``deploy/grafana/boards/*.py`` use them).

* :mod:`dashkit.sql`: the indicators with their Vietnamese wording, targets and
  thresholds, and SQL fragments (days of the period to date, the unit registry,
  exact comparisons with a target).
* :mod:`dashkit.queries`: queries more than one dashboard shows.
* :mod:`dashkit.panels`: panels (stat, table, time series), the grid layout,
  template variables, alert annotations and the dashboard itself.
"""
