"""Model catalog: providers, deployments, aliases, prices, approval and data-class ceilings."""
