"""Online adaptation: history inputs, dynamics estimators (UP-OSI, RMA) and adaptive policies (planned: issues 11
and 13). Nothing lives here yet."""
