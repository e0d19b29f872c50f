"""The controller: runs the control cycle (collect -> optimize -> actuate) on a timer and on GET /invoke."""
