"""The eirlab testbed (issue 6): simulated MMEs, attach-time blocking scenarios, load generation, reports.

Works against any S13 EIR (TS 29.272), not only eirlab. Modules, one concept each:

* :mod:`testbed.emm` EMM causes (TS 24.301 §9.9.3.9); :mod:`testbed.profiles` MME policies as data;
* :mod:`testbed.scenario` the YAML scenario, its population and expected outcomes;
* :mod:`testbed.mme` the simulated MME (attach / TAU / emergency attach, TS 23.401 §5.3.2.1 step 5b);
* :mod:`testbed.arrivals` arrival schedules; :mod:`testbed.loadgen` the open-loop load generator;
* :mod:`testbed.responder` the fixed-answer calibration peer; :mod:`testbed.verdict`, :mod:`testbed.report`,
  :mod:`testbed.trace` (pcap), :mod:`testbed.progress` (live terminal display).
"""
