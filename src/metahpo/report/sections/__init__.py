"""The report's sections, one module each; importing this package registers them in report order.

Each module defines one ``Section`` (``metahpo.report.section``) and registers it in ``SECTIONS``;
its partial is ``templates/sections/<id>.html``. A new section is a new module here, its partial,
and an import line below: the import order is the order of the table of contents and the page.
"""

from metahpo.report.sections import summary  # noqa: F401  (registers on import, in this order)
from metahpo.report.sections import tasks  # noqa: F401
from metahpo.report.sections import sweeps  # noqa: F401
from metahpo.report.sections import loto  # noqa: F401
from metahpo.report.sections import strategies  # noqa: F401
from metahpo.report.sections import convergence  # noqa: F401
from metahpo.report.sections import fewshot  # noqa: F401
from metahpo.report.sections import selection  # noqa: F401
from metahpo.report.sections import lr_control  # noqa: F401
from metahpo.report.sections import provenance  # noqa: F401
