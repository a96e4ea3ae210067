-- Every document removed between the candidates and the training corpus, and why.
with duplicates as (
    select * from {{ ref('int_duplicate_corpus_documents') }}
),

contamination as (
    select * from {{ ref('fct_contamination') }}
),

candidates as (
    select * from {{ ref('int_unioned_corpus_candidates') }}
),

removed_duplicates as (
    select doc_id, category, 'exact_duplicate' as reason, duplicate_of_doc_id as detail
    from duplicates
),

removed_near_duplicates as (
    select doc_id, category, 'near_duplicate' as reason, kept_doc_id as detail
    from {{ ref('stg_forge__near_duplicate_clusters') }}
    where not is_kept
),

removed_contaminated as (
    select
        contamination.doc_id,
        any_value(candidates.category) as category,
        'contamination' as reason,
        string_agg(
            distinct contamination.benchmark || '/' || contamination.reason || ':' || contamination.item_id, ', '
        ) as detail
    from contamination
    left join candidates using (doc_id)
    group by contamination.doc_id
),

removed_license as (
    select doc_id, category, 'license_not_allowed' as reason, license as detail
    from candidates
    where not ({{ license_allowed('license') }})
),

final as (
    select * from removed_duplicates
    union all
    select * from removed_near_duplicates
    union all
    select * from removed_contaminated
    union all
    select * from removed_license
)

select * from final
