-- Every document a quality filter (forge.text.filters) dropped before the corpus, with the reason:
-- general code and text, agent documents, crawled pages. Source-step skips (a package that did not
-- download, an unreadable file) are in stg_forge__dropped_rows as examples, not here.
with dropped as (
    select * from {{ ref('stg_forge__dropped_rows') }}
),

final as (
    select
        case asset
            when 'code_documents' then 'code'
            when 'text_documents' then 'text'
            else 'agent'
        end as category,
        asset,
        reason,
        source_uri,
        detail
    from dropped
    where is_filter_drop
)

select * from final
