"""The resource catalogue (目录管理系统): resources and their sources, entries and their revisions, review, update obligations, data elements, search, interface services, DCAT, import and export."""

# Whatever changes a resource imports this package: the DAG snapshot's session hooks are then installed, so
# dag_specs.json follows every committed schedule change without a command having to remember it.
import registry.catalog.dagspecs  # noqa: E402,F401
