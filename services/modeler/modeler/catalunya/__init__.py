"""Catalunya: the territory dimension (municipalities by official code, comarques), social services, population,
electricity by sector, and the coverage of services per resident. ``modeler.catalunya.marts`` registers them."""
