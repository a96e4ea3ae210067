-- Every drop on the way to the corpus, counted by asset, step and reason: the source steps' skips (a
-- package that did not download, an operation without a signature, a malformed record) and the
-- quality filters' drops, with the full counts (a source step keeps only a few example rows).
with dropped as (
    select * from {{ ref('stg_forge__dropped_rows') }}
),

final as (
    select
        asset,
        step,
        reason,
        is_filter_drop,
        sum(n_dropped)::bigint as n_dropped,
        count(detail) as n_examples,
        any_value(detail) filter (where detail is not null) as example
    from dropped
    group by asset, step, reason, is_filter_drop
)

select * from final
