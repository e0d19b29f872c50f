"""The performance model, shared by the optimizer (sizing) and the controller (the online tuner): service time
(servicetime), the queueing model (queueing), the perfParms fit (fit) and online tuning (tuner). Pure; imports
only services.core."""
