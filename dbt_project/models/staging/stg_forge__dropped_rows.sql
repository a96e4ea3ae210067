-- What ingest dropped: one row per dropped item, or per kept example plus one row for the rest of a
-- reason's count (n_dropped); the step and reason parsed out of "step:reason".
-- raw/_dropped/<asset>.parquet (contracts.tables.DROPPED_ROWS) is written beside the code, text and
-- agent documents and the crawled pages: several assets, so it is read here rather than declared a
-- dbt source (a source is one Dagster asset, which no single asset materializes). The path is
-- relative, resolved by file_search_path like the sources'.
with source as (
    select * from read_parquet('raw/_dropped/*.parquet', union_by_name = true)
),

final as (
    select
        asset,
        -- quality filters write their reason bare; source steps as "<step>:<reason>"
        case when contains(reason, ':') then split_part(reason, ':', 1) else 'filters' end as step,
        case when contains(reason, ':') then split_part(reason, ':', 2) else reason end as reason,
        not contains(reason, ':') as is_filter_drop,
        detail,
        source_uri,
        -- drops this row stands for (see contracts.tables.DROPPED_ROWS): a source step keeps a few
        -- examples per reason and one row, without detail, for the rest of its count
        coalesce(n, 1) as n_dropped
    from source
)

select * from final
